"""Listing projects under ``firestore.rules``: a user finds the projects they are a member of,
and no query reveals anyone else's (the web dashboard's project list depends on it).

Real Firestore emulator, real rules, requests as Firebase users over REST.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import requests
from google.cloud import firestore
from test_rules import RULES_FILE, id_token, load_rules

from aletheia.cloud import config, layout

ROLES = ["viewer", "writer", "owner"]


@pytest.fixture()
def rules_on(stack: config.Settings, db: firestore.Client) -> config.Settings:
    load_rules(stack, RULES_FILE.read_text(encoding="utf-8"))
    now = dt.datetime.now(dt.timezone.utc)
    for name, members in {
        "ana-only": {"ana": "owner"},
        "shared": {"bo": "owner", "ana": "viewer"},
        "bo-only": {"bo": "owner", "cy": "writer"},
    }.items():
        db.document(layout.project(name)).set({"name": name, "created_at": now, "members": members})
    return stack


def run_query(
    settings: config.Settings, uid: str, where: dict[str, Any] | None
) -> requests.Response:
    url = (
        f"http://{settings.firestore_emulator_host}/v1/projects/{settings.cloud_project}"
        "/databases/(default)/documents:runQuery"
    )
    query: dict[str, Any] = {"from": [{"collectionId": layout.PROJECTS}]}
    if where is not None:
        query["where"] = where
    headers = {"Authorization": f"Bearer {id_token(uid, settings.cloud_project)}"}
    return requests.post(url, json={"structuredQuery": query}, headers=headers, timeout=10)


def member_filter(uid: str) -> dict[str, Any]:
    """``members.<uid> in [viewer, writer, owner]``, as the dashboard asks."""
    return {
        "fieldFilter": {
            "field": {"fieldPath": f"members.`{uid}`"},
            "op": "IN",
            "value": {"arrayValue": {"values": [{"stringValue": r} for r in ROLES]}},
        }
    }


def names(response: requests.Response) -> set[str]:
    assert response.status_code == 200, response.text
    return {
        row["document"]["name"].rsplit("/", 1)[1] for row in response.json() if "document" in row
    }


def test_a_user_lists_exactly_the_projects_they_are_a_member_of(
    rules_on: config.Settings,
) -> None:
    assert names(run_query(rules_on, "ana", member_filter("ana"))) == {"ana-only", "shared"}
    assert names(run_query(rules_on, "bo", member_filter("bo"))) == {"shared", "bo-only"}
    assert names(run_query(rules_on, "dee", member_filter("dee"))) == set()


@pytest.mark.parametrize(
    ("asker", "where"),
    [
        ("ana", None),  # every project
        ("ana", member_filter("bo")),  # somebody else's projects
    ],
)
def test_no_query_lists_projects_of_others(
    rules_on: config.Settings, asker: str, where: dict[str, Any] | None
) -> None:
    assert run_query(rules_on, asker, where).status_code == 403
