"""The dataset lock file of a git repository: ``.aletheia/datasets.lock``.

It pins, per aletheia project, the dataset version a branch uses. It is
committed with the code, so checking out another branch (and pulling)
gives that branch's data. The format is JSON with sorted keys and one entry
per line, so merges and reviews see one changed line per changed pin::

    {
      "format": 1,
      "projects": {
        "default": {
          "mnist": {"manifest_sha256": "…", "version": "v2"}
        }
      }
    }
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aletheia import layout
from aletheia.errors import ConfigError

LOCK_DIR = ".aletheia"
LOCK_NAME = "datasets.lock"
FORMAT = 1


@dataclass(frozen=True)
class Pin:
    """The version of one dataset a repository uses."""

    version: str
    manifest_sha256: str | None = None


def find_repo_root(start: Path | None = None) -> Path | None:
    """The nearest directory at or above ``start`` (default: cwd) holding ``.git``."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def lock_path(repo_root: Path) -> Path:
    """``{repo}/.aletheia/datasets.lock``."""
    return repo_root / LOCK_DIR / LOCK_NAME


class LockFile:
    """Read, change and atomically save the pins of one repository."""

    def __init__(self, path: Path, pins: dict[str, dict[str, Pin]] | None = None) -> None:
        self.path = path
        self.pins: dict[str, dict[str, Pin]] = pins or {}

    @classmethod
    def load(cls, repo_root: Path) -> LockFile:
        """The lock file of a repository (empty if it has none yet)."""
        path = lock_path(repo_root)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"{path} is not a valid lock file: {exc}",
                "resolve the merge conflict in it, or delete it and pin again",
            ) from exc
        return cls(path, _parse(data, path))

    def get(self, project: str, name: str) -> Pin | None:
        """The pin of ``name`` in ``project``, if any."""
        return self.pins.get(project, {}).get(name)

    def pin(self, project: str, name: str, version: str, manifest_sha256: str | None) -> None:
        """Pin ``name`` to ``version`` (call :meth:`save` to write it)."""
        layout.validate_id(project, "project name")
        layout.validate_id(name, "dataset name")
        self.pins.setdefault(project, {})[name] = Pin(version, manifest_sha256)

    def unpin(self, project: str, name: str) -> bool:
        """Drop a pin; True if there was one."""
        return self.pins.get(project, {}).pop(name, None) is not None

    def save(self) -> None:
        """Write atomically (temp file + rename), creating ``.aletheia/`` if needed."""
        body = {
            "format": FORMAT,
            "projects": {
                p: {n: _pin_dict(pin) for n, pin in sorted(names.items())}
                for p, names in sorted(self.pins.items())
                if names
            },
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}")
        tmp.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(self.path)


def _pin_dict(pin: Pin) -> dict[str, Any]:
    out: dict[str, Any] = {"version": pin.version}
    if pin.manifest_sha256:
        out["manifest_sha256"] = pin.manifest_sha256
    return out


def _parse(data: Any, path: Path) -> dict[str, dict[str, Pin]]:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(
            f"{path}: unknown lock file format", f"expected {{'format': {FORMAT}, ...}}"
        )
    pins: dict[str, dict[str, Pin]] = {}
    for project, names in (data.get("projects") or {}).items():
        for name, entry in (names or {}).items():
            if not isinstance(entry, dict) or not isinstance(entry.get("version"), str):
                raise ConfigError(f"{path}: bad pin for {project}/{name}", "pin it again")
            pins.setdefault(project, {})[name] = Pin(entry["version"], entry.get("manifest_sha256"))
    return pins
