"""Where settings come from: arguments, environment, repository config, user config, defaults.

Every setting aletheia reads is resolved here, once, into a frozen
:class:`Settings`; each value remembers where it came from so
``aletheia config`` can say why a run went where it went. The repository's
``.aletheia/config.toml`` may set only a project's own settings (see
:mod:`aletheia.cloud.repoconfig`); the keys it is refused are noted.

With no cloud credentials and nothing configured the target is the local
emulator stack started by ``aletheia local up``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from aletheia.cloud import repoconfig
from aletheia.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

Mode = Literal["local", "cloud"]
GitPolicy = Literal["warn", "strict", "off"]
#: Who the Firestore client is: a signed-in Firebase user (judged by
#: firestore.rules), server credentials (bypass the rules), or the user when
#: one is signed in for this cloud project and the server otherwise.
Identity = Literal["auto", "user", "server"]

#: Cloud project id the local emulators pretend to be.
LOCAL_CLOUD_PROJECT = "aletheia-local"
#: aletheia project (``Projects/{project}``) used when none is named.
DEFAULT_PROJECT = "default"
#: Bucket the local stack creates.
LOCAL_BUCKET = "aletheia-local"

# Environment variable for each setting. The standard Google emulator
# variables are honoured as they are, so tools that already set them work.
ENV_VARS: dict[str, tuple[str, ...]] = {
    "project": ("ALETHEIA_PROJECT",),
    "mode": ("ALETHEIA_MODE",),
    "cloud_project": ("ALETHEIA_CLOUD_PROJECT", "GOOGLE_CLOUD_PROJECT"),
    "bucket": ("ALETHEIA_BUCKET",),
    "firestore_emulator_host": ("ALETHEIA_FIRESTORE_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST"),
    "storage_emulator_host": ("ALETHEIA_STORAGE_EMULATOR_HOST", "STORAGE_EMULATOR_HOST"),
    "credentials_file": ("ALETHEIA_CREDENTIALS", "GOOGLE_APPLICATION_CREDENTIALS"),
    "cache_dir": ("ALETHEIA_CACHE_DIR",),
    "stack_dir": ("ALETHEIA_STACK_DIR",),
    "git_policy": ("ALETHEIA_GIT_POLICY",),
    "identity": ("ALETHEIA_IDENTITY",),
    "firebase_api_key": ("ALETHEIA_FIREBASE_API_KEY",),
    "auth_emulator_host": ("ALETHEIA_AUTH_EMULATOR_HOST", "FIREBASE_AUTH_EMULATOR_HOST"),
    "user_credentials": ("ALETHEIA_USER_CREDENTIALS",),
    "owner": ("ALETHEIA_OWNER",),
    "export_every": ("ALETHEIA_EXPORT_EVERY",),
    "snapshot_max_bytes": ("ALETHEIA_SNAPSHOT_MAX_BYTES",),
    "experiment": ("ALETHEIA_EXPERIMENT",),
    "downloads_url": ("ALETHEIA_DOWNLOADS_URL",),
}
CONFIG_FILE_ENV = "ALETHEIA_CONFIG"
#: Default seconds between the local stack's periodic Firestore exports.
DEFAULT_EXPORT_EVERY_S = 60.0
#: Default budget for a run's snapshot of untracked files (bytes, in all).
DEFAULT_SNAPSHOT_MAX_BYTES = 10 * 1024 * 1024
#: File in the stack dir where ``aletheia local up`` records what runs where.
STACK_STATE_FILE = "state.json"

_CHOICES: dict[str, tuple[str, ...]] = {
    "mode": ("local", "cloud"),
    "git_policy": ("warn", "strict", "off"),
    "identity": ("auto", "user", "server"),
}


def _xdg(var: str, fallback: str) -> Path:
    return Path(os.environ.get(var) or Path.home() / fallback)


def default_config_file() -> Path:
    """``$ALETHEIA_CONFIG`` or ``~/.config/aletheia/config.toml``."""
    explicit = os.environ.get(CONFIG_FILE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    return _xdg("XDG_CONFIG_HOME", ".config") / "aletheia" / "config.toml"


def default_stack_dir() -> Path:
    """Where the local stack keeps its state file, logs and data."""
    return _xdg("XDG_STATE_HOME", ".local/state") / "aletheia" / "stack"


def default_cache_dir() -> Path:
    """Where content-addressed files are cached on this machine."""
    return _xdg("XDG_CACHE_HOME", ".cache") / "aletheia"


def default_user_credentials(cloud_project: str) -> Path:
    """Where ``aletheia auth login`` keeps the signed-in user of a cloud project."""
    return _xdg("XDG_CONFIG_HOME", ".config") / "aletheia" / "users" / f"{cloud_project}.json"


def adc_file() -> Path:
    """gcloud's application-default credentials file (``gcloud auth application-default login``)."""
    return _xdg("CLOUDSDK_CONFIG", ".config/gcloud") / "application_default_credentials.json"


@dataclass(frozen=True)
class Settings:
    """Resolved settings. ``sources`` maps each field to where its value came from."""

    project: str
    mode: Mode
    cloud_project: str
    bucket: str
    firestore_emulator_host: str | None
    storage_emulator_host: str | None
    credentials_file: Path | None
    cache_dir: Path
    stack_dir: Path
    git_policy: GitPolicy
    identity: Identity = "auto"
    firebase_api_key: str | None = None
    auth_emulator_host: str | None = None
    user_credentials: Path | None = None
    #: Firebase uid that server-credential clients act for: owner of the projects
    #: they create, and the member an existing project must name for them to write.
    owner: str | None = None
    #: Seconds between the local stack's periodic Firestore exports (0: only on ``down``).
    export_every: float = DEFAULT_EXPORT_EVERY_S
    #: Bytes of untracked files a run start keeps, in all (0: none).
    snapshot_max_bytes: int = DEFAULT_SNAPSHOT_MAX_BYTES
    #: The deployed download function's URL (the dashboard's diffs and artifacts; cloud mode:
    #: the local stack's own is found in its state file).
    downloads_url: str | None = None
    #: Experiment ``Metastore.exper()`` uses when given no name (``aletheia run -e`` sets it).
    experiment: str | None = None
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    #: Settings that were overridden or look wrong (shown by ``aletheia config``).
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def uses_emulators(self) -> bool:
        """True when the target is the local emulator stack."""
        return self.mode == "local"

    def describe(self) -> dict[str, tuple[str, str]]:
        """``{setting: (value, source)}`` for display."""
        return {
            f.name: (str(getattr(self, f.name)), self.sources.get(f.name, "default"))
            for f in fields(self)
            if f.name not in ("sources", "notes")
        }


def load_config_file(path: Path) -> dict[str, Any]:
    """Read the ``[aletheia]`` table (or the top level) of a TOML config file."""
    try:
        if not path.is_file():
            return {}
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"config file {path} cannot be read: {exc.strerror}",
            f"fix its permissions, or point {CONFIG_FILE_ENV} elsewhere",
        ) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"config file {path} is not valid TOML: {exc}", "fix or remove it"
        ) from exc
    table = data.get("aletheia", data)
    if not isinstance(table, dict):
        raise ConfigError(f"[aletheia] in {path} must be a table", "see README 'Configuration'")
    unknown = set(table) - set(ENV_VARS)
    if unknown:
        raise ConfigError(
            f"unknown setting(s) in {path}: {', '.join(sorted(unknown))}",
            f"known settings: {', '.join(sorted(ENV_VARS))}",
        )
    for key, value in table.items():
        # Every setting is text (a name, a host or a path); TOML would happily
        # hand over a list or a number that fails much later, far from the file.
        if not isinstance(value, str):
            raise ConfigError(
                f"setting {key!r} in {path} must be a string, "
                f"not {type(value).__name__} {value!r:.60}",
                f"write it as {key} = \"...\" (see README 'Configuration')",
            )
    return table


def resolve(
    overrides: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    repo_dir: Path | None = None,
) -> Settings:
    """Resolve every setting: ``overrides`` > environment > repository > user file > defaults.

    ``overrides`` are explicit arguments (``None`` values are ignored, so
    callers can pass their optional parameters straight through). The
    repository is the git work tree at or above ``repo_dir`` (default: the
    current directory); its ``.aletheia/config.toml`` may set only
    :data:`~aletheia.cloud.repoconfig.REPO_SETTINGS`.
    """
    env = os.environ if env is None else env
    args = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = set(args) - set(ENV_VARS)
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    for key, value in args.items():
        if not isinstance(value, (str, os.PathLike)):
            raise ConfigError(
                f"setting {key!r} passed as an argument must be a string or path, "
                f"not {type(value).__name__} {value!r:.60}",
                "pass it as text",
            )
    path = config_file if config_file is not None else default_config_file()
    from_file = load_config_file(path)
    repo = repoconfig.read(repo_dir, known=ENV_VARS)
    layers: list[tuple[str, Mapping[str, Any]]] = [(f"file {path}", from_file)]
    if repo is not None:
        layers.insert(0, (f"repo {repo.path}", repo.values))

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, env_names in ENV_VARS.items():
        value, source = _pick(name, args, env, env_names, layers)
        if value is not None:
            values[name] = value
            sources[name] = source
    refused = _refused_notes(repo, path) if repo is not None else []
    _warn_once(refused, stacklevel=3)
    return _complete(values, sources, env, refused)


def _refused_notes(repo: repoconfig.RepoConfig, user_file: Path) -> list[str]:
    """One note per setting the repository may not choose: which, why, where to set it."""
    return [
        f"{key} in {repo.path} is ignored: {why}; set it in {user_file} "
        f"or {' / '.join(ENV_VARS[key])} instead"
        for key, why in sorted(repo.refused.items())
    ]


def _pick(
    name: str,
    args: Mapping[str, Any],
    env: Mapping[str, str],
    env_names: tuple[str, ...],
    layers: list[tuple[str, Mapping[str, Any]]],
) -> tuple[Any, str]:
    if name in args:
        return args[name], "argument"
    for var in env_names:
        if env.get(var):
            return env[var], f"env {var}"
    for source, table in layers:
        if name in table:
            return table[name], source
    return None, "default"


def _complete(
    values: dict[str, Any],
    sources: dict[str, str],
    env: Mapping[str, str],
    notes_so_far: list[str],
) -> Settings:
    for name, allowed in _CHOICES.items():
        if name in values and values[name] not in allowed:
            raise ConfigError(
                f"{name} is {values[name]!r} ({sources[name]})",
                f"choose one of: {', '.join(allowed)}",
            )
    mode = values.get("mode") or _default_mode(values)
    sources.setdefault("mode", "default")
    stack_dir = Path(values.get("stack_dir") or default_stack_dir()).expanduser()
    notes = list(notes_so_far)
    if mode == "local":
        stack_notes = _fill_from_stack_state(values, sources, stack_dir)
        _warn_once(stack_notes)
        notes += stack_notes
    if mode == "cloud":
        _require_cloud_project(values)
    cloud_project = values.get("cloud_project") or LOCAL_CLOUD_PROJECT
    bucket = values.get("bucket") or (
        LOCAL_BUCKET if mode == "local" else f"{cloud_project}-aletheia"
    )
    creds = values.get("credentials_file")
    return Settings(
        project=values.get("project") or DEFAULT_PROJECT,
        mode=mode,
        cloud_project=cloud_project,
        bucket=bucket,
        firestore_emulator_host=values.get("firestore_emulator_host") if mode == "local" else None,
        storage_emulator_host=_with_scheme(values.get("storage_emulator_host"))
        if mode == "local"
        else None,
        credentials_file=Path(creds).expanduser() if creds else None,
        cache_dir=Path(values.get("cache_dir") or default_cache_dir()).expanduser(),
        stack_dir=stack_dir,
        git_policy=values.get("git_policy") or "warn",
        identity=values.get("identity") or "auto",
        firebase_api_key=values.get("firebase_api_key"),
        auth_emulator_host=values.get("auth_emulator_host") if mode == "local" else None,
        user_credentials=Path(values["user_credentials"]).expanduser()
        if values.get("user_credentials")
        else default_user_credentials(cloud_project),
        owner=values.get("owner") or None,
        export_every=_seconds(values, sources, "export_every", DEFAULT_EXPORT_EVERY_S),
        snapshot_max_bytes=_byte_count(values, sources, "snapshot_max_bytes"),
        downloads_url=values.get("downloads_url") or None,
        experiment=values.get("experiment") or None,
        sources=sources,
        notes=tuple(notes),
    )


def _seconds(
    values: Mapping[str, Any], sources: Mapping[str, str], name: str, default: float
) -> float:
    """A setting holding a number of seconds, 0 or more."""
    raw = values.get(name)
    if raw is None or raw == "":
        return default
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        seconds = -1.0
    if not (seconds >= 0 and seconds != float("inf")):
        raise ConfigError(
            f"{name} is {raw!r} ({sources.get(name, 'argument')})",
            "give a number of seconds, 0 or more (0: only when the stack stops)",
        )
    return seconds


def _byte_count(values: Mapping[str, Any], sources: Mapping[str, str], name: str) -> int:
    """A setting holding a number of bytes, 0 or more (``10MB``, ``512kB`` and ``0`` too)."""
    raw = values.get(name)
    if raw is None or raw == "":
        return DEFAULT_SNAPSHOT_MAX_BYTES
    match = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)i?[bB]?\s*", str(raw))
    if match is None:
        raise ConfigError(
            f"{name} is {raw!r} ({sources.get(name, 'argument')})",
            "give a number of bytes, 0 or more, e.g. 10000000 or 10MB (0: keep none)",
        )
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[match[2].lower()]
    return int(match[1]) * scale


def read_stack_state(stack_dir: Path) -> dict[str, Any]:
    """The state file ``aletheia local up`` writes: endpoints, pids, ports (``{}`` if none)."""
    path = stack_dir / STACK_STATE_FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"local stack state {path} is unreadable: {exc}",
            "run `aletheia local down` then `aletheia local up`",
        ) from exc
    return state if isinstance(state, dict) else {}


def _fill_from_stack_state(
    values: dict[str, Any], sources: dict[str, str], stack_dir: Path
) -> list[str]:
    """Point at the running local stack unless emulator hosts were given explicitly."""
    state = read_stack_state(stack_dir)
    env = state.get("env")
    if not isinstance(env, dict):
        return []  # no stack (or a damaged state file): nothing to point at
    source = f"local stack {stack_dir / STACK_STATE_FILE}"
    for name, var in (
        ("firestore_emulator_host", "FIRESTORE_EMULATOR_HOST"),
        ("storage_emulator_host", "STORAGE_EMULATOR_HOST"),
        ("cloud_project", "GOOGLE_CLOUD_PROJECT"),
        ("bucket", "ALETHEIA_BUCKET"),
        ("auth_emulator_host", "FIREBASE_AUTH_EMULATOR_HOST"),
    ):
        if not values.get(name) and isinstance(env.get(var), str) and env[var]:
            values[name] = env[var]
            sources[name] = source
    return _prefer_stack_project(values, sources, env, source)


def _prefer_stack_project(
    values: dict[str, Any], sources: dict[str, str], stack_env: Mapping[str, Any], source: str
) -> list[str]:
    """Talking to the stack's Firestore means using the stack's project id.

    The emulators accept any project id and keep each in its own namespace,
    so a ``GOOGLE_CLOUD_PROJECT`` left in the shell for real work would
    silently put documents where the stack's storage function and every other
    local client never look. The stack's project wins; the mismatch is noted.
    """
    project = stack_env.get("GOOGLE_CLOUD_PROJECT")
    host = stack_env.get("FIRESTORE_EMULATOR_HOST")
    given = values.get("cloud_project")
    if not project or not given or given == project:
        return []
    if values.get("firestore_emulator_host") != host:
        return []  # another emulator than this stack's: its project is the user's call
    note = (
        f"cloud project {given!r} ({sources.get('cloud_project', 'default')}) is ignored: "
        f"the local stack uses {project!r}, and the emulator keeps each project's data "
        f"apart; unset it while using the local stack"
    )
    values["cloud_project"] = project
    sources["cloud_project"] = f"{source} (overrides {sources.get('cloud_project')})"
    return [note]


class ConfigWarning(UserWarning):
    """A setting was overridden because it could not have been meant, or refused because a
    repository may not choose it (see ``aletheia config``)."""


_warned: set[str] = set()


def _warn_once(notes: list[str], stacklevel: int = 4) -> None:
    """Each note once per process: settings are resolved by every client a script makes.

    ``stacklevel`` (counted from here) points the warning at the code that called
    :func:`resolve`.
    """
    for note in notes:
        if note not in _warned:
            _warned.add(note)
            warnings.warn(note, ConfigWarning, stacklevel=stacklevel)


def _default_mode(values: Mapping[str, Any]) -> Mode:
    """Cloud only when a cloud project *and* credentials are configured and no emulator is."""
    if values.get("firestore_emulator_host") or values.get("storage_emulator_host"):
        return "local"
    has_creds = bool(values.get("credentials_file")) or adc_file().is_file()
    if values.get("cloud_project") and has_creds:
        return "cloud"
    return "local"


def _require_cloud_project(values: Mapping[str, Any]) -> None:
    if not values.get("cloud_project"):
        raise ConfigError(
            "mode is 'cloud' but no cloud project is set",
            "set ALETHEIA_CLOUD_PROJECT or cloud_project in the config file",
        )


def _with_scheme(host: str | None) -> str | None:
    """The storage client wants a URL; accept a bare host:port too."""
    if host and "://" not in host:
        return f"http://{host}"
    return host
