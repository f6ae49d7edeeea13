"""Quickstart: create a project and an experiment in the local stack, say where to look.

Run by `make demo` after `aletheia local up`.
"""

from __future__ import annotations

from google.cloud import firestore

from aletheia import clients, config, layout

PROJECT = "quickstart"
EXPERIMENT = "hello aletheia"


def main() -> None:
    settings = config.resolve()
    db = clients.firestore_client(settings)
    db.document(layout.project(PROJECT)).set(
        {
            "name": PROJECT,
            "description": "created by examples/quickstart.py",
            "created_at": firestore.SERVER_TIMESTAMP,
        },
        merge=True,
    )
    db.document(layout.experiment(PROJECT, EXPERIMENT)).set(
        {"name": EXPERIMENT, "created_at": firestore.SERVER_TIMESTAMP}, merge=True
    )
    print(f"created {layout.experiment(PROJECT, EXPERIMENT)}")
    print(f"  in Firestore at {settings.firestore_emulator_host or settings.cloud_project}")


if __name__ == "__main__":
    main()
