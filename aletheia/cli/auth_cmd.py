"""``aletheia auth login | logout | whoami``: act as a Firebase user, judged by the rules."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from aletheia.cli._common import console, exit_on_error, settings
from aletheia.cloud import auth

app = typer.Typer(
    help="Sign in as a Firebase user so Firestore's rules (project roles) apply to you. "
    "Without a sign-in, aletheia uses server credentials, which bypass the rules.",
    no_args_is_help=True,
)

EmailOption = Annotated[
    str, typer.Option("--email", "-e", prompt=True, help="The Firebase user's email.")
]
PasswordOption = Annotated[
    str,
    typer.Option(
        "--password",
        prompt=True,
        hide_input=True,
        envvar="ALETHEIA_PASSWORD",
        help="The password (prompted for when not given; or set ALETHEIA_PASSWORD).",
    ),
]


@app.command()
@exit_on_error
def login(
    email: EmailOption,
    password: PasswordOption,
    create: Annotated[
        bool,
        typer.Option("--create", help="Create the user first (email/password sign-up)."),
    ] = False,
) -> None:
    """Sign in and remember the user for this cloud project (a 0600 file, refresh token only)."""
    resolved = settings()
    user = auth.login(resolved, email, password, create=create)
    console.print(f"signed in as [bold]{user.email}[/] (uid {user.uid})")
    console.print(
        f"owners add you to a project with: aletheia project members add {user.uid} writer -p P"
    )


@app.command()
@exit_on_error
def logout() -> None:
    """Forget the signed-in user; aletheia goes back to server credentials."""
    user = auth.logout(settings())
    console.print(f"signed out {user.email}" if user else "nobody was signed in")


@app.command()
@exit_on_error
def whoami(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Who Firestore sees: the signed-in user (and its uid) or server credentials."""
    resolved = settings()
    user = auth.signed_in_user(resolved) if resolved.identity != "server" else None
    record = {
        "identity": "user" if user else "server",
        "uid": user.uid if user else None,
        "email": user.email if user else None,
        "cloud_project": resolved.cloud_project,
        "rules_apply": user is not None,
    }
    if as_json:
        console.print_json(json.dumps(record))
        return
    if user is None:
        governs = "the emulator's owner token" if resolved.uses_emulators else "IAM governs access"
        console.print(
            f"server credentials on {resolved.cloud_project} (the rules do not apply; "
            f"{governs}). Sign in with `aletheia auth login`."
        )
        return
    console.print(f"{user.email} (uid {user.uid}) on {resolved.cloud_project}")
