"""The tracker's refusals as MLflow's errors, each with the code MLflow's own stores use."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    INVALID_STATE,
    RESOURCE_DOES_NOT_EXIST,
)

from aletheia.errors import AletheiaError, ConflictError, NotFoundError


@contextmanager
def tracking_errors() -> Iterator[None]:
    """Turn the run store's refusals into MLflow's errors.

    A missing run is ``RESOURCE_DOES_NOT_EXIST``, a run another process is
    logging ``INVALID_STATE``, any other refusal (a value, a changed param, a
    deleted run) ``INVALID_PARAMETER_VALUE``.
    """
    try:
        yield
    except AletheiaError as exc:
        message = f"{exc.message}; {exc.hint}" if exc.hint else exc.message
        code = INVALID_PARAMETER_VALUE
        if isinstance(exc, NotFoundError):
            code = RESOURCE_DOES_NOT_EXIST
        elif isinstance(exc, ConflictError):
            code = INVALID_STATE
        raise MlflowException(message, error_code=code) from exc
