"""A user for the dashboard of ``make demo``: signed up in the local Auth emulator, and
made an owner of the quickstart project, so signing in shows the quickstart's runs.

The dashboard shows only projects whose ``members`` name the signed-in user
(``firestore.rules`` decide); the quickstart wrote its runs with server
credentials, so the demo adds its user here, as an owner would with
``aletheia project members add <uid> owner -p quickstart``.
"""

from __future__ import annotations

from aletheia.cloud import auth, clients, config, members
from aletheia.errors import CredentialsError

PROJECT = "quickstart"
EMAIL = "demo@example.com"
PASSWORD = "aletheia-demo"


def main() -> None:
    settings = config.resolve({"identity": "server"})
    toolkit = auth.toolkit_for(settings)
    try:
        grant = toolkit.sign_up(EMAIL, PASSWORD)
    except CredentialsError:  # signed up by an earlier demo
        grant = toolkit.sign_in_with_password(EMAIL, PASSWORD)
    members.add_member(clients.firestore_client(settings), PROJECT, grant.uid, "owner")
    print(f"Dashboard user: {EMAIL} / {PASSWORD} (owner of project {PROJECT!r})")


if __name__ == "__main__":
    main()
