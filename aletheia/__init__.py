"""aletheia: a serverless experiment and data tracker on Google Cloud."""

from aletheia.cloud.config import Settings, resolve
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
from aletheia.tracking.metastore import Experiment, Metastore, Run

__version__ = "0.1.0"

__all__ = [
    "AletheiaError",
    "BackendUnavailableError",
    "ConfigError",
    "ConflictError",
    "CredentialsError",
    "Experiment",
    "GitPolicyError",
    "IntegrityError",
    "LocalStackError",
    "Metastore",
    "NotFoundError",
    "Run",
    "Settings",
    "ValidationError",
    "__version__",
    "resolve",
]
