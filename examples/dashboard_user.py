"""A user for the dashboard of ``make demo``: signed up in the local Auth emulator, and
made an owner of the quickstart project, so signing in shows the quickstart's runs.

The dashboard shows only projects whose ``members`` name the signed-in user
(``firestore.rules`` decide); the quickstart wrote its runs with server
credentials, so the demo adds its user here, as an owner would with
``aletheia project members add <uid> owner -p quickstart``. Its address is
marked verified in the emulator (as clicking the verification link would), so
the dashboard offers it the invitations sent to it.
"""

from __future__ import annotations

import requests

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
    if settings.auth_emulator_host:  # the demo's own user: no mail to click through
        requests.post(
            f"http://{settings.auth_emulator_host}/identitytoolkit.googleapis.com/v1/projects/"
            f"{settings.cloud_project}/accounts:update",
            json={"localId": grant.uid, "emailVerified": True},
            headers={"Authorization": "Bearer owner"},  # the emulator's admin access
            timeout=30,
        ).raise_for_status()
    members.add_member(clients.firestore_client(settings), PROJECT, grant.uid, "owner")
    print(f"Dashboard user: {EMAIL} / {PASSWORD} (owner of project {PROJECT!r})")


if __name__ == "__main__":
    main()
