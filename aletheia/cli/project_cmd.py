"""``aletheia project create | show | list`` and ``aletheia project members``.

Members: ``add | rm | list`` by Firebase uid, ``invite | invites | revoke`` by email;
the invited user's side: ``aletheia project invitations | join``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from google.cloud import firestore
from rich.table import Table

from aletheia.cli._common import console, exit_on_error, settings
from aletheia.cloud import auth, clients, invites, members
from aletheia.errors import ValidationError
from aletheia.tracking.compose import Backend

app = typer.Typer(help="aletheia projects and their members (viewer < writer < owner).")
members_app = typer.Typer(
    help="Who may read (viewer), write (writer) or administer (owner) a project.",
    no_args_is_help=True,
)
app.add_typer(members_app, name="members")

ProjectOption = Annotated[
    str | None,
    typer.Option(
        "--project",
        "-p",
        help="aletheia project (default: the `project` setting).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


_Command = TypeVar("_Command", bound=Callable[..., Any])


def _members_command(name: str | None = None) -> Callable[[_Command], _Command]:
    """Register a ``project members`` subcommand whose library errors (bad input, refusals by
    the rules) exit with their message and code, as every command's do."""

    def register(command: _Command) -> _Command:
        checked = exit_on_error(command)
        members_app.command(name)(checked)
        return checked

    return register


def _db_and_project(project: str | None) -> tuple[firestore.Client, str]:
    resolved = settings(project=project)
    return Backend(resolved).db, resolved.project


@app.command()
@exit_on_error
def create(
    owner: Annotated[
        str | None,
        typer.Option(help="Firebase user id of the first owner (default: the signed-in user)."),
    ] = None,
    project: ProjectOption = None,
    description: Annotated[str, typer.Option(help="What the project is about.")] = "",
) -> None:
    """Create the project with OWNER as its only member."""
    db, name = _db_and_project(project)
    owner = owner or clients.acting_uid(db)
    if owner is None:
        raise ValidationError(
            "a project needs an owner", "pass --owner UID, or sign in with `aletheia auth login`"
        )
    members.create_project(db, name, owner, description=description)
    console.print(f"created project [bold]{name}[/] (owner: {owner})")


@app.command()
@exit_on_error
def show(project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """Show the project document: name, description, creation time, members."""
    db, name = _db_and_project(project)
    doc = members.get_project(db, name)
    if as_json:
        console.print_json(json.dumps(doc, default=str))
        return
    console.print(f"[bold]{name}[/]  {doc.get('description') or ''}")
    console.print(f"created {doc.get('created_at', '-')}")
    _print_members(members.list_members(db, name))


@app.command("list")
@exit_on_error
def list_projects(as_json: JsonOption = False) -> None:
    """List every aletheia project of the configured cloud project (server credentials)."""
    from aletheia.cli._reading import reader

    found = reader(None).projects()
    if as_json:
        rows = [
            {"name": p.name, "description": p.description, "created_at": p.created_at}
            for p in found
        ]
        console.print_json(json.dumps(rows, default=str))
        return
    table = Table("project", "description", "created", "members")
    for p in found:
        created = p.created_at.strftime("%Y-%m-%d %H:%M:%S") if p.created_at else "-"
        table.add_row(p.name, p.description or "-", created, str(len(p.members)))
    table.caption = f"{len(found)} project(s)"
    console.print(table)


@app.command("invitations")
@exit_on_error
def my_invitations(as_json: JsonOption = False) -> None:
    """List the invitations to the signed-in user's (verified) address, in every project."""
    db, email = _signed_in()
    found = invites.pending_for(db, email)
    if as_json:
        rows = [{"project": i.project, "role": i.role, "expires_at": i.expires_at} for i in found]
        console.print_json(json.dumps(rows, default=str))
        return
    table = Table("project", "role", "expires")
    for i in found:
        table.add_row(i.project, i.role, _when(i.expires_at))
    table.caption = (
        f"{len(found)} invitation(s) to {email}; accept with `aletheia project join -p P`"
    )
    console.print(table)


@app.command()
@exit_on_error
def join(project: ProjectOption = None) -> None:
    """Accept the invitation to the project: join it with the invited role."""
    db, email = _signed_in()
    name = settings(project=project).project
    made = invites.accept(db, name, email)
    console.print(f"joined {name} as {made.role}")


def _signed_in() -> tuple[firestore.Client, str]:
    """The signed-in user's Firestore client and email; invitations are addressed to it."""
    resolved = settings()
    user = auth.signed_in_user(resolved) if resolved.identity != "server" else None
    if user is None or not user.email:
        raise ValidationError(
            "invitations are for a signed-in user",
            "sign in with the invited address: `aletheia auth login --email ADDRESS`",
        )
    return Backend(resolved).db, user.email


@_members_command("list")
def list_(project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """List members and their roles, owners first."""
    db, name = _db_and_project(project)
    found = members.list_members(db, name)
    if as_json:
        console.print_json(json.dumps(found))
        return
    _print_members(found)


@_members_command()
def add(
    uid: Annotated[str, typer.Argument(help="Firebase user id (what request.auth.uid holds).")],
    role: Annotated[str, typer.Argument(help="viewer, writer or owner.")] = "writer",
    project: ProjectOption = None,
) -> None:
    """Give UID ROLE in the project (changes the role of an existing member)."""
    db, name = _db_and_project(project)
    previous = members.add_member(db, name, uid, role)
    change = f"{previous} -> {role}" if previous else role
    console.print(f"{uid}: {change} in {name}")


@_members_command("rm")
def remove(
    uid: Annotated[str, typer.Argument(help="Firebase user id to remove.")],
    project: ProjectOption = None,
) -> None:
    """Remove UID from the project (the last owner cannot be removed)."""
    db, name = _db_and_project(project)
    previous = members.remove_member(db, name, uid)
    console.print(f"removed {uid} ({previous}) from {name}")


@_members_command()
def invite(
    email: Annotated[str, typer.Argument(help="Email address the new member signs in with.")],
    role: Annotated[str, typer.Argument(help="viewer, writer or owner.")] = "writer",
    project: ProjectOption = None,
    days: Annotated[
        int, typer.Option(help=f"Days the invitation stays valid (1-{invites.MAX_INVITE_DAYS}).")
    ] = invites.INVITE_DAYS,
) -> None:
    """Invite EMAIL as ROLE: they accept on the dashboard's projects page, signed in with it."""
    db, name = _db_and_project(project)
    made = invites.invite(db, name, email, role, days=days)
    console.print(
        f"invited {made.email} as {made.role} to {name} until {_when(made.expires_at)}: "
        "they accept on the dashboard's projects page, signed in with that (verified) address"
    )


@_members_command("invites")
def list_invites(project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """List the project's invitations (pending and expired), soonest expiry first."""
    db, name = _db_and_project(project)
    found = invites.list_invites(db, name)
    if as_json:
        rows = [
            {
                "email": i.email,
                "role": i.role,
                "expires_at": i.expires_at,
                "expired": i.expired(),
                "invited_by": i.invited_by,
            }
            for i in found
        ]
        console.print_json(json.dumps(rows, default=str))
        return
    table = Table("email", "role", "expires", "invited by")
    for i in found:
        expires = _when(i.expires_at) + (" (expired)" if i.expired() else "")
        table.add_row(i.email, i.role, expires, i.invited_by or "-")
    table.caption = f"{len(found)} invitation(s)"
    console.print(table)


@_members_command()
def revoke(
    email: Annotated[str, typer.Argument(help="Email address whose invitation to delete.")],
    project: ProjectOption = None,
) -> None:
    """Delete the invitation of EMAIL (members who already joined stay: `members rm`)."""
    db, name = _db_and_project(project)
    gone = invites.revoke(db, name, email)
    console.print(f"revoked the invitation of {gone.email} ({gone.role}) to {name}")


def _when(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _print_members(found: dict[str, str]) -> None:
    table = Table("uid", "role")
    for uid, role in found.items():
        table.add_row(uid, role)
    console.print(table)
