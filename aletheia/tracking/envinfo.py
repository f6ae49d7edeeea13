"""Where a run ran: python, platform, host, installed packages and visible accelerators.

:func:`capture` reads the installed distributions with
:mod:`importlib.metadata` (no ``pip`` subprocess) and caches the result for
the life of the process, so starting many runs costs one scan. The package
list goes into the run as a content-addressed blob
(:meth:`EnvInfo.requirements_text`); the run document keeps only
:meth:`EnvInfo.to_doc`, with a package count.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import os
import platform
import re
import socket
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Environment variables that say which accelerators a process may use.
ACCELERATOR_ENV = (
    "CUDA_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "TPU_NAME",
    "TPU_VISIBLE_CHIPS",
)
# The NVIDIA driver lists one directory per GPU here (Linux); reading it is free.
_NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")

_NORMALIZE = re.compile(r"[-_.]+")


def normalize_name(name: str) -> str:
    """PEP 503 normalized distribution name: ``Foo_Bar.baz`` → ``foo-bar-baz``."""
    return _NORMALIZE.sub("-", name).lower()


@dataclass(frozen=True)
class PythonInfo:
    """The interpreter: ``3.11.7``, ``CPython``, ``/path/to/python``."""

    version: str
    implementation: str
    executable: str


@dataclass(frozen=True)
class PlatformInfo:
    """The operating system: ``Linux``, ``6.1.0-…``, ``x86_64``."""

    system: str
    release: str
    machine: str


@dataclass(frozen=True)
class EnvInfo:
    """A snapshot of the environment a run started in."""

    python: PythonInfo
    platform: PlatformInfo
    hostname: str
    packages: dict[str, str] = field(default_factory=dict)
    accelerators: dict[str, Any] = field(default_factory=dict)

    def to_doc(self) -> dict[str, Any]:
        """A Firestore-ready map: no package list (that is a blob), only its size.

        ``python`` is the version string (what ``aletheia runs env --diff``
        compares); the implementation and interpreter path sit beside it.
        """
        return {
            "python": self.python.version,
            "python_implementation": self.python.implementation,
            "python_executable": self.python.executable,
            "platform": {
                "system": self.platform.system,
                "release": self.platform.release,
                "machine": self.platform.machine,
            },
            "hostname": self.hostname,
            "package_count": len(self.packages),
            "accelerators": dict(self.accelerators),
        }

    def requirements_text(self) -> str:
        """``name==version`` lines sorted by name, as ``pip install -r`` reads them.

        Deterministic for the same environment, so identical environments share
        one blob.
        """
        return "".join(f"{name}=={version}\n" for name, version in sorted(self.packages.items()))


_lock = threading.Lock()
_cached: EnvInfo | None = None


def capture(*, refresh: bool = False) -> EnvInfo:
    """The current environment, scanned once per process (``refresh`` scans again).

    Refresh after installing packages into a running interpreter (a notebook's
    ``%pip install``), otherwise the first scan is returned.
    """
    global _cached
    with _lock:
        if _cached is None or refresh:
            if refresh:
                importlib.invalidate_caches()
            _cached = _scan()
        return _cached


def _scan() -> EnvInfo:
    uname = platform.uname()
    return EnvInfo(
        python=PythonInfo(
            version=platform.python_version(),
            implementation=platform.python_implementation(),
            executable=sys.executable,
        ),
        platform=PlatformInfo(system=uname.system, release=uname.release, machine=uname.machine),
        hostname=socket.gethostname(),
        packages=installed_packages(),
        accelerators=accelerators(),
    )


def installed_packages() -> dict[str, str]:
    """``{normalized name: version}`` of every distribution importable from ``sys.path``.

    When a name is installed twice (a user site and a venv), the first one on
    ``sys.path`` wins, as it does for ``import``. Distributions with broken
    metadata (no name or version) are skipped.
    """
    packages: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name, version = name_and_version(dist)
        if not name or not version:
            continue
        packages.setdefault(normalize_name(name), version)
    return packages


def name_and_version(dist: importlib.metadata.Distribution) -> tuple[str | None, str | None]:
    """A distribution's ``Name`` and ``Version`` from its metadata headers alone.

    ``dist.metadata`` parses the whole file as e-mail, long description
    included: most of a second for a hundred distributions, at every run start.
    """
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    name = version = None
    for line in text.partition("\n\n")[0].splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        if key == "Name" and name is None:
            name = value.strip()
        elif key == "Version" and version is None:
            version = value.strip()
    return name or None, version or None


def accelerators() -> dict[str, Any]:
    """Accelerator hints that cost nothing to read: visibility variables, NVIDIA GPU count."""
    found: dict[str, Any] = {
        var.lower(): os.environ[var] for var in ACCELERATOR_ENV if var in os.environ
    }
    with contextlib.suppress(OSError):  # no NVIDIA driver on this machine
        found["nvidia_gpus"] = sum(1 for _ in _NVIDIA_GPUS.iterdir())
    return found
