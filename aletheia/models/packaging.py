"""What ``run.log_model`` stores for a model given as files or as a Python object.

Files and directories are stored as they are. Any other object is pickled
into one file, :data:`PICKLE_FILE` (flavor ``pickle`` unless another is
named), with :data:`PICKLE_PROTOCOL` so that every supported Python reads it
back. Unpickling runs code from the file: load only models you trust, as
with ``pickle`` itself.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

from aletheia.errors import NotFoundError, ValidationError

#: The file a pickled model is stored as, inside its artifact version.
PICKLE_FILE = "model.pkl"
#: Protocol 5: Python >= 3.8 reads it, and it stores large buffers (numpy arrays) efficiently.
PICKLE_PROTOCOL = 5
#: Flavor of a model given as an object, unless the caller names one.
PICKLE_FLAVOR = "pickle"
#: Flavor of a model given as files, unless the caller names one.
FILES_FLAVOR = "files"


def is_path(value: Any) -> bool:
    """True if ``value`` names files (a ``str`` or path-like), not a model object."""
    return isinstance(value, str | os.PathLike)


#: How a model given as an object is serialised (recorded on its version).
PICKLE_SERIALIZATION = "pickle"


def stage(model: Any, flavor: str | None, workdir: Path) -> tuple[Path, bool, str]:
    """``(path to store, is_dir, flavor)`` for a model given as a path or an object.

    An object is pickled into ``workdir`` (which the caller removes afterwards),
    whatever its ``flavor`` (``sklearn`` …, default ``pickle``).
    """
    if is_path(model):
        path = Path(model).expanduser()
        if not path.exists():
            raise NotFoundError(f"model path {str(path)!r} does not exist", "save the model first")
        return path, path.is_dir(), flavor or FILES_FLAVOR
    target = workdir / PICKLE_FILE
    try:
        with target.open("wb") as fh:
            pickle.dump(model, fh, protocol=PICKLE_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise ValidationError(
            f"the model object ({type(model).__name__}) cannot be pickled: {exc}",
            "save it with its framework's own function and pass the file or directory",
        ) from exc
    return target, False, flavor or PICKLE_FLAVOR


def load_pickled(root: Path) -> Any:
    """The object pickled in ``root`` (a downloaded model version stored from an object)."""
    path = root / PICKLE_FILE if root.is_dir() else root
    if not path.is_file():
        raise NotFoundError(
            f"no {PICKLE_FILE} in {root}",
            "this version was logged as files: download() it and load it with its framework",
        )
    with path.open("rb") as fh:
        return pickle.load(fh)  # documented: load only models you trust
