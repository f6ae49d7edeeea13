"""aletheia: a serverless experiment and data tracker on Google Cloud."""

from aletheia.config import Settings, resolve
from aletheia.errors import (
    AletheiaError,
    BackendUnavailableError,
    ConfigError,
    ConflictError,
    CredentialsError,
    GitPolicyError,
    IntegrityError,
    LocalStackError,
    NotFoundError,
    ValidationError,
)

__version__ = "0.1.0"

__all__ = [
    "AletheiaError",
    "BackendUnavailableError",
    "ConfigError",
    "ConflictError",
    "CredentialsError",
    "GitPolicyError",
    "IntegrityError",
    "LocalStackError",
    "NotFoundError",
    "Settings",
    "ValidationError",
    "__version__",
    "resolve",
]
