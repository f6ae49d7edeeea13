"""Members by email in a real browser (Chromium + Playwright, the local stack with the Auth
emulator, firestore.rules enforced): an owner invites an address from the project page and
revokes another; the invited colleague registers, verifies the address through the link
Firebase Auth sends, sees the invitation on their projects page, accepts it, and is a
member with the invited role. Nobody typed a uid.
"""

from __future__ import annotations

import datetime as dt

import requests
from google.cloud import firestore
from playwright.sync_api import Page, expect
from test_webui import PASSWORD, sign_in, switch_user

from aletheia.cloud import config, layout, members

# The fixtures of the dashboard's browser tests (pytest finds them in this module's namespace).
from test_webui import browser, page, ui_url, web  # noqa: F401  isort: skip
from test_webui import sign_up  # isort: skip


def verification_link(settings: config.Settings, email: str) -> str:
    """The link of the verification email Firebase Auth (its emulator) sent to ``email``."""
    url = (
        f"http://{settings.auth_emulator_host}/emulator/v1/projects/"
        f"{settings.cloud_project}/oobCodes"
    )
    codes = requests.get(url, timeout=30).json().get("oobCodes", [])
    links = [
        c["oobLink"] for c in codes if c["email"] == email and c["requestType"] == "VERIFY_EMAIL"
    ]
    assert len(links) == 1, codes
    return str(links[0])


def test_an_owner_invites_by_email_and_the_colleague_accepts_on_their_projects_page(
    web: config.Settings,  # noqa: F811
    db: firestore.Client,
    page: Page,  # noqa: F811
    ui_url: str,  # noqa: F811
) -> None:
    ana = sign_up(web, "ana@example.com")
    members.create_project(db, "vision", ana)
    members.create_project(db, "archive", ana)
    # An invitation to Bo that expired: never offered (the rules would refuse it anyway).
    db.document(layout.invite("archive", "bo@example.com")).set(
        {
            "email": "bo@example.com",
            "role": "owner",
            "project": "archive",
            "invited_at": dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=15),
            "expires_at": dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1),
        }
    )

    # Ana invites Bo (typing his address with capitals) as a viewer, and Cy, whom she revokes.
    sign_in(page, ui_url, "ana@example.com")
    page.goto(ui_url + "#/p/vision")
    expect(page.locator("[data-testid=no-invites]")).to_be_visible()
    for address, role in (("Bo@Example.com", "viewer"), ("cy@example.com", "owner")):
        page.fill("[data-testid=invite-email]", address)
        page.select_option("[data-testid=invite-role]", role)
        page.click("text=Invite")
        row = page.locator(f"table[data-testid=invites] tr[data-email='{address.lower()}']")
        expect(row.locator("td[data-col=role]")).to_have_text(role)
    stored = db.document(layout.invite("vision", "bo@example.com")).get().to_dict() or {}
    assert stored["role"] == "viewer" and stored["invited_by"] == ana
    lasts = stored["expires_at"] - stored["invited_at"]
    assert dt.timedelta(days=13) < lasts < dt.timedelta(days=15)
    page.locator("tr[data-email='cy@example.com'] [data-testid=revoke-invite]").click()
    expect(page.locator("table[data-testid=invites] tr[data-email]")).to_have_count(1)
    assert not db.document(layout.invite("vision", "cy@example.com")).get().exists
    # An address the browser lets through but that cannot name an invitation: said so.
    page.fill("[data-testid=invite-email]", "a/b@example.com")
    page.click("text=Invite")
    expect(page.locator("[data-testid=error]")).to_contain_text("Not an email address")
    assert [s.id for s in db.collection(layout.invites("vision")).stream()] == ["bo@example.com"]

    # Bo registers in the browser: his address is not verified, so no invitation shows.
    page.click("text=Sign out")
    page.goto(ui_url + "#/")
    expect(page.locator("[data-testid=login]")).to_be_visible()
    page.fill("input[name=email]", "bo@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("text=Register")
    expect(page.locator("[data-testid=unverified]")).to_be_visible()
    expect(page.locator("[data-testid=my-invites]")).to_have_count(0)
    # He asks for the verification email and follows its link (as from his mailbox).
    page.click("text=Send verification email")
    expect(page.locator("[data-testid=unverified]")).to_contain_text("A link was sent")
    link = verification_link(web, "bo@example.com")
    verify = page.context.new_page()
    opened = verify.goto(link)
    assert opened is not None and opened.ok, opened and opened.text()
    verify.close()
    page.click("text=I have verified it")

    # Now his pending invitation shows (not the expired one), and he accepts it.
    invitations = page.locator("table[data-testid=my-invites] tr[data-project]")
    expect(invitations).to_have_count(1)
    expect(invitations.first).to_have_attribute("data-project", "vision")
    expect(invitations.first.locator("td[data-col=role]")).to_have_text("viewer")
    page.click("[data-testid=accept-invite]")
    expect(page.locator("h1")).to_have_text("vision")
    bo = next(uid for uid, role in members.list_members(db, "vision").items() if uid != ana)
    expect(page.locator("table[data-testid=members]")).to_contain_text(f"{bo} (you)")
    assert members.list_members(db, "vision") == {ana: "owner", bo: "viewer"}
    assert not db.document(layout.invite("vision", "bo@example.com")).get().exists
    # A viewer neither sees nor manages the project's invitations.
    expect(page.locator("[data-testid=invite-email]")).to_have_count(0)
    page.goto(ui_url + "#/")
    expect(page.locator("[data-testid=project-link]")).to_have_text(["vision"])
    expect(page.locator("[data-testid=my-invites]")).to_have_count(0)

    # Ana sees Bo as a member and no pending invitation left.
    switch_user(page, ui_url, "ana@example.com")
    page.goto(ui_url + "#/p/vision")
    expect(page.locator("table[data-testid=members]")).to_contain_text(bo)
    expect(page.locator("[data-testid=no-invites]")).to_be_visible()
