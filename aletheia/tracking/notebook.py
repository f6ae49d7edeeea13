"""The notebook a run was started from: its path, and its content as a blob.

A notebook's git diff is a diff of JSON (outputs, execution counts): it
says little and often is not even committed. When a run starts inside a
Jupyter kernel, the notebook file itself is kept instead, as a
content-addressed blob the run document names (``notebook``:
``{path, content_ref}``; the same notebook saved twice is stored once).

The kernel learns its notebook from the server that started it: Jupyter
Server sets ``JPY_SESSION_NAME`` in the kernel's environment (and ipykernel
mirrors it as ``__session__`` in the user namespace); VS Code sets
``__vsc_ipynb_file__`` there; ``aletheia run`` (:mod:`aletheia.tracking.nbrun`)
sets :data:`NOTEBOOK_ENV`. :func:`current_path` reads them (``aletheia run``'s
first), and believes only an existing ``.ipynb`` file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: Largest notebook kept (outputs can hold images); a bigger one is recorded by path only.
MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024
#: The notebook ``aletheia run`` executes, named to its kernel (papermill sets no session name).
NOTEBOOK_ENV = "ALETHEIA_NOTEBOOK"


def current_path() -> Path | None:
    """The notebook this process runs, if it is a Jupyter kernel that knows it."""
    main = sys.modules.get("__main__")
    namespace = vars(main) if main is not None else {}
    for candidate in (
        os.environ.get(NOTEBOOK_ENV),
        os.environ.get("JPY_SESSION_NAME"),
        namespace.get("__session__"),
        namespace.get("__vsc_ipynb_file__"),
    ):
        if isinstance(candidate, str) and candidate.endswith(".ipynb"):
            path = Path(candidate).expanduser()
            if path.is_file():
                return path.resolve()
    return None


def read(path: Path) -> bytes | None:
    """The notebook's bytes as saved now, or None when too big or unreadable."""
    try:
        if path.stat().st_size > MAX_NOTEBOOK_BYTES:
            return None
        return path.read_bytes()
    except OSError:
        return None
