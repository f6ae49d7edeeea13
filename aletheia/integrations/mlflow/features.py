"""How aletheia's MLflow store answers for the MLflow features it does not keep.

MLflow's ``AbstractStore`` grows with every release (traces, evaluation
datasets, scorers, the AI gateway ...), and its defaults raise
``NotImplementedError``, which MLflow's own callers do not expect from a store:
an ordinary call that asks in passing for one of them would break. So, as
MLflow's own file store does for what it lacks:

* searches of features aletheia does not store answer *empty* (nothing of the
  kind can be created here, so none exists: the truthful answer);
* everything else answers ``MlflowException`` with ``FEATURE_DISABLED``
  (:func:`disable_unimplemented` covers every such method, including those a
  newer MLflow adds).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from mlflow.exceptions import MlflowException, MlflowNotImplementedException
from mlflow.protos.databricks_pb2 import FEATURE_DISABLED
from mlflow.store.entities.paged_list import PagedList

T = TypeVar("T", bound=type)

#: Names an MLflow base method's code refers to when it only says "not here".
_NOT_IMPLEMENTED = {"NotImplementedError", "MlflowNotImplementedException"}


def unsupported(what: str, hint: str = "") -> MlflowException:
    """MLflow's own error for an MLflow feature aletheia does not provide."""
    message = f"aletheia's MLflow store does not support {what}"
    return MlflowException(f"{message}. {hint}".strip(), error_code=FEATURE_DISABLED)


class AbsentFeatures:
    """Empty answers for searches of what aletheia does not store (mixed into the store).

    Arguments are taken loosely: their names change between MLflow releases,
    and the answer does not depend on them.
    """

    def search_traces(self, *args: Any, **kwargs: Any) -> tuple[list[Any], str | None]:
        """No traces (tracing is not supported)."""
        return [], None

    def search_datasets(self, *args: Any, **kwargs: Any) -> PagedList:
        """No MLflow evaluation datasets (aletheia's datasets are ``aletheia datasets``)."""
        return PagedList([], None)


def _disabled(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with its "not implemented" turned into MLflow's ``FEATURE_DISABLED``."""
    what = f"{name} (an MLflow feature it does not keep)"

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(self, *args, **kwargs)
            except (NotImplementedError, MlflowNotImplementedException) as exc:
                raise unsupported(what) from exc

        return async_wrapper

    @functools.wraps(fn)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except (NotImplementedError, MlflowNotImplementedException) as exc:
            raise unsupported(what) from exc

    return wrapper


def disable_unimplemented(cls: T) -> T:
    """Class decorator: each method ``cls`` inherits from MLflow that only raises
    "not implemented" answers ``FEATURE_DISABLED`` instead.

    Methods are found by what their code refers to, so a method a later MLflow
    adds is covered without a change here.
    """
    for name in dir(cls):
        if name.startswith("__"):
            continue
        owner = next(k for k in cls.__mro__ if name in vars(k))
        fn = vars(owner)[name]
        if not owner.__module__.startswith("mlflow.") or not inspect.isfunction(fn):
            continue
        if _NOT_IMPLEMENTED & set(fn.__code__.co_names):
            setattr(cls, name, _disabled(name, fn))
    return cls


__all__ = ["AbsentFeatures", "disable_unimplemented", "unsupported"]
