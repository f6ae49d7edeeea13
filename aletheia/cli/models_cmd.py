"""``aletheia models``: list, show, register, alias, rename, pull and compare registered models."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import typer
from rich.table import Table

from aletheia.cli._common import console, exit_on_error, settings
from aletheia.cli._datasets_common import JsonOption, ProjectOption, ToOption, emit_json
from aletheia.cloud import layout
from aletheia.errors import ValidationError
from aletheia.models import ModelRegistry, ModelVersion
from aletheia.models.registry import parse_version
from aletheia.tracking.metastore import Metastore

app = typer.Typer(
    help="Registered models: numbered immutable versions naming their run, data and code; "
    "aliases (champion, staging ...) that move.",
    no_args_is_help=True,
)

NameArgument = Annotated[str, typer.Argument(help="Model name.")]
VersionOption = Annotated[
    str | None, typer.Option("--version", "-v", help="Version number (default: the latest).")
]
AliasOption = Annotated[
    str | None, typer.Option("--alias", "-a", help="The version this alias points at.")
]


def _metastore(project: str | None) -> Metastore:
    resolved = settings(project=project)
    return Metastore(resolved.project, settings=resolved)


def _registry(project: str | None) -> ModelRegistry:
    return _metastore(project).model_registry


def _one(registry: ModelRegistry, name: str, which: str | None, alias: str | None) -> ModelVersion:
    return registry.get(name, which, alias=alias)


def _pick(registry: ModelRegistry, name: str, which: str) -> ModelVersion:
    """A version given as a number (``3``, ``v3``) or an alias (``champion``)."""
    try:
        number = parse_version(which)
    except ValidationError:
        return registry.get(name, alias=which)
    return registry.get(name, number)


def _short(values: Mapping[str, Any], n: int = 3) -> str:
    items = [f"{k}={v}" for k, v in sorted(values.items())]
    return ", ".join(items[:n]) + (" …" if len(items) > n else "")


@app.command("list")
@exit_on_error
def list_(
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", "-d", help="Only versions trained on NAME@VERSION (lineage)."),
    ] = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the registered models (or, with --dataset, the versions trained on a dataset)."""
    registry = _registry(project)
    if dataset is not None:
        name, sep, version = dataset.partition("@")
        if not sep:
            raise typer.BadParameter("give the dataset as NAME@VERSION", param_hint="--dataset")
        layout.dataset_ref(name, version)
        found = registry.trained_on(name, version)
        if as_json:
            emit_json([mv.to_dict() for mv in found])
            return
        table = Table("model", "version", "aliases", "experiment", "run", "metrics")
        for mv in found:
            table.add_row(
                mv.name,
                str(mv.version),
                ", ".join(mv.aliases),
                mv.experiment or "-",
                mv.run or "-",
                _short(mv.metrics),
            )
        console.print(table)
        return
    models = registry.models()
    if as_json:
        emit_json([m.to_dict() for m in models])
        return
    table = Table("name", "latest", "aliases", "description")
    for m in models:
        aliases = ", ".join(f"{a}→{v}" for a, v in sorted(m.aliases.items()))
        table.add_row(m.name, str(m.latest_version or "-"), aliases, m.description)
    console.print(table)


@app.command("show")
@exit_on_error
def show(
    name: NameArgument,
    version: VersionOption = None,
    alias: AliasOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show NAME's versions, or one version (--version/--alias) with its lineage."""
    registry = _registry(project)
    if version is None and alias is None:
        info = registry.info(name)
        versions = registry.versions(name)
        if as_json:
            emit_json({**info.to_dict(), "versions": [mv.to_dict() for mv in versions]})
            return
        console.print(f"[bold]{name}[/]  {info.description}")
        table = Table("version", "aliases", "flavor", "run", "data", "metrics", "by", "created")
        for mv in versions:
            table.add_row(
                str(mv.version),
                ", ".join(mv.aliases),
                mv.flavor or "-",
                f"{mv.experiment}/{mv.run}" if mv.run else "-",
                ", ".join(mv.dataset_refs) or "-",
                _short(mv.metrics),
                mv.registered_by or "-",
                str(mv.created_at or ""),
            )
        console.print(table)
        return
    mv = _one(registry, name, version, alias)
    if as_json:
        emit_json(mv.to_dict())
        return
    art = mv.artifact
    console.print(f"[bold]{name}[/] version {mv.version}  aliases: {', '.join(mv.aliases) or '-'}")
    lines = {
        "flavor": mv.flavor,
        "run": f"{mv.experiment}/{mv.run}" if mv.run else None,
        "artifact": f"{art.experiment}/{art.name} {art.version}" if art else mv.source,
        "datasets": ", ".join(mv.dataset_refs),
        "commit": mv.git.get("commit"),
        "registered by": mv.registered_by,
        "created": mv.created_at,
        "description": mv.description,
    }
    for key, value in lines.items():
        console.print(f"  {key:14} {value if value not in (None, '') else '-'}")
    table = Table("", "name", "value")
    for kind, values in (
        ("param", mv.params),
        ("hyper", mv.hyper_params),
        ("metric", mv.metrics),
        ("tag", mv.tags),
    ):
        for key, value in sorted(values.items()):
            table.add_row(kind, key, str(value))
    console.print(table)


@app.command("register")
@exit_on_error
def register(
    name: NameArgument,
    run: Annotated[str, typer.Option("--run", "-r", help="The run, as EXPERIMENT/RUN.")],
    artifact: Annotated[str, typer.Option("--artifact", help="Artifact the run saved.")],
    artifact_version: Annotated[
        str | None,
        typer.Option("--artifact-version", help="Which of its saves (default: the run's last)."),
    ] = None,
    flavor: Annotated[str | None, typer.Option("--flavor", help="How to load it.")] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    alias: Annotated[
        list[str] | None, typer.Option("--alias", "-a", help="Point these aliases at it.")
    ] = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register an artifact version a run saved as the next version of NAME."""
    ms = _metastore(project)
    mv = ms.register_model(
        name,
        run=run,
        artifact=artifact,
        version=artifact_version,
        flavor=flavor,
        description=description,
    )
    for each in alias or []:
        ms.model(name).set_alias(each, mv.version)
    if as_json:
        emit_json({**mv.to_dict(), "aliases": list(alias or [])})
        return
    console.print(f"registered {name} version {mv.version} from run {run}")


@app.command("alias")
@exit_on_error
def alias_(
    name: NameArgument,
    alias: Annotated[str, typer.Argument(help="Alias, e.g. champion or staging.")],
    version: Annotated[
        str | None, typer.Argument(help="Version it points at (omit with --delete).")
    ] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias.")] = False,
    project: ProjectOption = None,
) -> None:
    """Point ALIAS of NAME at VERSION (aliases move; versions never change)."""
    registry = _registry(project)
    if delete:
        registry.delete_alias(name, alias)
        console.print(f"{name}: alias {alias} removed")
        return
    if version is None:
        raise typer.BadParameter("give the VERSION the alias points at (or --delete)")
    registry.set_alias(name, alias, version)
    console.print(f"{name}: {alias} → version {parse_version(version)}")


@app.command("rename")
@exit_on_error
def rename(
    name: NameArgument,
    new_name: Annotated[str, typer.Argument(help="The model's new name (not registered yet).")],
    project: ProjectOption = None,
) -> None:
    """Rename NAME to NEW_NAME: its versions, aliases, tags and description move."""
    _registry(project).rename_model(name, new_name)
    console.print(f"{name} renamed to {new_name}")


@app.command("pull")
@exit_on_error
def pull(
    name: NameArgument,
    version: VersionOption = None,
    alias: AliasOption = None,
    to: ToOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Download a version of NAME through the local cache, verifying every file."""
    mv = _one(_registry(project), name, version, alias)
    where = mv.download(to, verify="full")
    if as_json:
        emit_json({**mv.to_dict(), "local_path": str(where)})
        return
    console.print(f"{name} version {mv.version}: {where}")


def comparison(a: ModelVersion, b: ModelVersion) -> list[tuple[str, Any, Any]]:
    """``(row, value in a, value in b)``: lineage, then params, hyper-params and metrics."""
    rows: list[tuple[str, Any, Any]] = [
        ("version", f"{a.name}/{a.version}", f"{b.name}/{b.version}"),
        ("aliases", ", ".join(a.aliases), ", ".join(b.aliases)),
        ("run", f"{a.experiment}/{a.run}", f"{b.experiment}/{b.run}"),
        ("commit", a.git.get("commit"), b.git.get("commit")),
        ("data", ", ".join(a.dataset_refs), ", ".join(b.dataset_refs)),
    ]
    for prefix, left, right in (
        ("params", a.params, b.params),
        ("hyper_params", a.hyper_params, b.hyper_params),
        ("metrics", a.metrics, b.metrics),
    ):
        for key in sorted(set(left) | set(right)):
            rows.append((f"{prefix}.{key}", left.get(key), right.get(key)))
    return rows


@app.command("compare")
@exit_on_error
def compare(
    name: NameArgument,
    first: Annotated[str, typer.Argument(help="A version number or an alias.")],
    second: Annotated[str, typer.Argument(help="Another version number or alias.")],
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Two versions of NAME side by side: run, commit, data, params and metrics."""
    registry = _registry(project)
    a, b = _pick(registry, name, first), _pick(registry, name, second)
    rows = comparison(a, b)
    if as_json:
        emit_json([{"field": f, "a": x, "b": y} for f, x, y in rows])
        return
    table = Table("", f"v{a.version}", f"v{b.version}")
    for field, x, y in rows:
        style = "" if x == y else "bold"
        table.add_row(
            field, "-" if x is None else str(x), "-" if y is None else str(y), style=style
        )
    console.print(table)
