"""The admin panel at /admin in a real browser, driven the way an operator uses it: by labels and names.

Each test makes its own staff account and project through the API, opens the
panel signed in (or signs in through it), acts in the browser and checks what
the operator sees and what the API then holds.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect
from websockets.sync.client import ClientConnection, connect

from browser_fixtures import serious_accessibility_violations
from conftest import (
    ROOT,
    Project,
    Server,
    Staff,
    fit_in_one_window,
    make_project,
    sign_up_staff,
    start_server,
    unique_email,
)
from jwt_tools import hs256, now

pytestmark = pytest.mark.browser

NODE_DIR = ROOT / "tests" / "node"
STATIC = ROOT / "src" / "chatgate" / "web" / "static"
SECTIONS = ["Settings", "API keys", "Users", "Inbox", "Audit", "Token tester", "Members"]
WAIT = 10_000


# -- helpers ---------------------------------------------------------------------


@pytest.fixture
def api(web_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=web_server.url, timeout=30) as client:
        yield client


@pytest.fixture
def owner(api: httpx.Client) -> Staff:
    return sign_up_staff(api, "panel")


@pytest.fixture
def project(api: httpx.Client, owner: Staff) -> Project:
    return make_project(api, owner)


def open_panel(page: Any, server: Server, staff: Staff, route: str = "/projects") -> None:
    """The panel, signed in as ``staff`` (the session kept where the panel keeps it), at ``#<route>``."""
    page.goto(f"{server.url}/admin")
    session = json.dumps({"token": staff.token, "user": {"_id": staff.id, "email": staff.email}})
    page.evaluate("s => sessionStorage.setItem('chatgate:admin', s)", session)
    page.goto(f"{server.url}/admin#{route}")
    page.reload()
    expect(page.get_by_role("button", name="Sign out", exact=True)).to_be_visible(timeout=WAIT)


def section(page: Any, name: str) -> None:
    """Open a section from the project's navigation and wait for its heading."""
    page.get_by_role("navigation", name="Project sections").get_by_role("link", name=name, exact=True).click()
    expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible(timeout=WAIT)


def confirm(page: Any, button: str) -> None:
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name=button).click()
    expect(dialog).to_be_hidden()


def customer(api: httpx.Client, project: Project, external_id: str, **claims: Any) -> dict[str, Any]:
    r = api.post(
        f"/v1/projects/{project.id}/auth/customer/login",
        json={"jwtToken": hs256(project.secret, {"externalId": external_id, "iat": now(), **claims})},
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def project_settings(api: httpx.Client, project: Project) -> dict[str, Any]:
    r = api.get(f"/v1/projects/{project.id}", headers=project.owner.auth)
    assert r.status_code == 200, r.text
    return dict(r.json())


def users_of(api: httpx.Client, project: Project, **query: Any) -> list[dict[str, Any]]:
    r = api.get(f"/v1/projects/{project.id}/users", params={"limit": 200, **query}, headers=project.owner.auth)
    assert r.status_code == 200, r.text
    return list(r.json()["users"])


def no_horizontal_scroll(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"))


# -- the page itself ------------------------------------------------------------------


def test_the_page_is_served_under_a_strict_policy_and_listed_in_the_docs(web_server: Server) -> None:
    with httpx.Client(base_url=web_server.url) as api:
        r = api.get("/admin")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        policy = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy
        assert "script-src 'self'" in policy and "style-src 'self'" in policy and "unsafe-inline" not in policy
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["referrer-policy"] == "no-referrer"
        page = r.text
        # Scripts come only from files; no inline script, style or event handler.
        assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page) == []
        assert " style=" not in page and "<style" not in page
        assert re.search(r"<[^>]*\son[a-z]+\s*=", page) is None
        assert api.get("/admin/", follow_redirects=False).headers["location"] == "/admin"
        assert "/admin" in api.get("/docs").text
        assert "/admin" in api.get("/openapi.json").json()["paths"]
        for name in ("admin.js", "admin.css"):
            assert api.get(f"/static/{name}").status_code == 200
    # What the API returns is put on the page as text, never parsed as HTML.
    for script in STATIC.glob("admin*.js"):
        source = script.read_text(encoding="utf-8")
        assert "innerHTML" not in source and "insertAdjacentHTML" not in source and "eval(" not in source, script


# -- signing in ----------------------------------------------------------------------------


def test_sign_up_sign_in_create_a_project_and_sign_out(page: Any, web_server: Server, api: httpx.Client) -> None:
    email = unique_email("signup")
    page.goto(f"{web_server.url}/admin")
    page.get_by_role("link", name="Create a staff account").click()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("a sturdy passphrase 42")
    page.get_by_label("First name").fill("Grace")
    page.get_by_label("Last name").fill("Hopper")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Projects", exact=True)).to_be_visible(timeout=WAIT)
    expect(page.get_by_text(email)).to_be_visible()

    page.get_by_label("Project name").fill("Helpdesk")
    page.get_by_role("button", name="New project").click()
    expect(page.get_by_role("heading", name="Settings", exact=True)).to_be_visible(timeout=WAIT)
    expect(page.get_by_role("heading", name=re.compile("^Helpdesk"))).to_be_visible()
    nav = page.get_by_role("navigation", name="Project sections")
    assert [link.strip() for link in nav.get_by_role("link").all_inner_texts()] == SECTIONS
    token = json.loads(page.evaluate("sessionStorage.getItem('chatgate:admin')"))["token"]
    assert token.startswith("JWT ")
    projects = api.get("/v1/projects", headers={"Authorization": token}).json()
    assert [(p["name"], p["role"]) for p in projects] == [("Helpdesk", "owner")]
    assert page.url.endswith(f"#/projects/{projects[0]['_id']}/settings")

    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=WAIT)
    assert page.evaluate("sessionStorage.getItem('chatgate:admin')") is None
    assert api.get("/v1/projects", headers={"Authorization": token}).status_code == 401

    # A wrong password: the API's sentence. The right one: back to the projects.
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("not the passphrase")
    page.get_by_role("button", name="Sign in").click()
    message = api.post("/v1/auth/signin", json={"email": email, "password": "nope nope"}).json()["error"]["message"]
    expect(page.get_by_role("status")).to_have_text(message, timeout=WAIT)
    page.get_by_label("Password").fill("a sturdy passphrase 42")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("link", name="Helpdesk")).to_be_visible(timeout=WAIT)


def test_too_many_sign_in_attempts_say_how_long_to_wait(page: Any, tmp_path: Path) -> None:
    server = start_server(tmp_path, None, workers=1, extra_env={"CHATGATE_RATE_LIMITS": "signin_account=2/300"})
    try:
        page.goto(f"{server.url}/admin")
        fit_in_one_window(300)
        for _ in range(3):
            page.get_by_label("Email").fill("someone@example.com")
            page.get_by_label("Password").fill("wrong password")
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("button", name="Sign in")).to_be_enabled(timeout=WAIT)
        expect(page.get_by_role("status")).to_have_text(
            re.compile(r"Too many attempts\. Try again in \d+ seconds?\."), timeout=WAIT
        )
    finally:
        server.stop()


def test_a_session_ended_elsewhere_returns_to_sign_in(page: Any, web_server: Server, api: httpx.Client) -> None:
    staff = sign_up_staff(api, "ended")
    make_project(api, staff)
    open_panel(page, web_server, staff)
    expect(page.get_by_role("link", name="Support")).to_be_visible(timeout=WAIT)
    assert api.post("/v1/auth/logout", headers=staff.auth).status_code == 200
    page.get_by_role("link", name="Support").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=WAIT)
    expect(page.get_by_text("Your session has ended. Sign in again.")).to_be_visible()


# -- settings ---------------------------------------------------------------------------------


def test_settings_save_only_what_changed_and_show_the_apis_complaints(
    page: Any, web_server: Server, api: httpx.Client, project: Project
) -> None:
    open_panel(page, web_server, project.owner, f"/projects/{project.id}/settings")
    expect(page.get_by_label("Seat limit")).to_have_value("")
    expect(page.get_by_label("Maximum token age (seconds)")).to_have_value("900")
    page.get_by_label("Seat limit").fill("25")
    page.get_by_label("Anonymous visitors").uncheck()
    page.get_by_label("Allowed origins").fill("https://shop.example\nhttp://localhost:3000")
    with page.expect_request(lambda r: r.method == "PATCH") as sent:
        page.get_by_role("button", name="Save").click()
    assert sent.value.post_data_json == {
        "settings": {
            "seat_limit": 25,
            "auth_methods": {"anonymous": False},
            "allowed_origins": ["https://shop.example", "http://localhost:3000"],
        }
    }
    expect(page.get_by_role("status").filter(has_text="Saved.")).to_be_visible(timeout=WAIT)
    settings = project_settings(api, project)["settings"]
    assert settings["seat_limit"] == 25
    assert settings["auth_methods"] == {"anonymous": False, "email": True, "external_jwt": True}
    assert settings["allowed_origins"] == ["https://shop.example", "http://localhost:3000"]

    page.reload()
    expect(page.get_by_label("Seat limit")).to_have_value("25", timeout=WAIT)
    expect(page.get_by_label("Anonymous visitors")).not_to_be_checked()
    expect(page.get_by_label("Allowed origins")).to_have_value("https://shop.example\nhttp://localhost:3000")

    # Refused values: the API's sentence next to each field, and nothing changes.
    page.get_by_label("Seat limit").fill("-3")
    page.get_by_label("Clock leeway (seconds)").fill("9000")
    page.get_by_role("button", name="Save").click()
    seat = page.get_by_label("Seat limit")
    expect(seat).to_have_attribute("aria-invalid", "true", timeout=WAIT)
    expect(seat).to_have_accessible_description(re.compile("must be null or a whole number from 0"))
    expect(page.get_by_label("Clock leeway (seconds)")).to_have_accessible_description(
        re.compile("must be a whole number from 0 to 600")
    )
    expect(page.get_by_text("Nothing was saved")).to_be_visible()
    assert project_settings(api, project)["settings"] == settings


def test_turning_external_sign_in_on_generates_the_secret(page: Any, web_server: Server, api: httpx.Client) -> None:
    staff = sign_up_staff(api, "jwt-on")
    r = api.post("/v1/projects", json={"name": "Fresh"}, headers=staff.auth)
    pid = r.json()["_id"]
    api.patch(f"/v1/projects/{pid}", json={"settings": {"auth_methods": {"external_jwt": False}}}, headers=staff.auth)
    open_panel(page, web_server, staff, f"/projects/{pid}/settings")
    expect(page.get_by_text("No signing secret yet")).to_be_visible(timeout=WAIT)
    page.get_by_label("External JWT sign-in").check()
    page.get_by_role("button", name="Save").click()
    secret = page.get_by_label("Signing secret")
    expect(secret).to_have_value(re.compile(r"^[A-Za-z0-9_-]{43}$"), timeout=WAIT)
    assert api.get(f"/v1/projects/{pid}", headers=staff.auth).json()["hasSigningSecret"] is True
    code = hs256(secret.input_value(), {"user": {"id": "first"}})
    assert api.post(f"/v1/projects/{pid}/auth/external-code", json={"externalAuthCode": code}).status_code == 200


def node_available() -> str:
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "jsonwebtoken").is_dir():
        pytest.skip("Node.js with jsonwebtoken is needed (cd tests/node && npm ci)")
    return node


def test_the_secret_is_shown_once_and_the_node_snippet_mints_a_code_that_signs_in(
    page: Any, browser: Any, web_server: Server, api: httpx.Client
) -> None:
    node = node_available()
    staff = sign_up_staff(api, "snippets")
    pid = api.post("/v1/projects", json={"name": "Snippets"}, headers=staff.auth).json()["_id"]
    open_panel(page, web_server, staff, f"/projects/{pid}/settings")
    page.get_by_role("button", name="Generate secret").click()
    secret = page.get_by_label("Signing secret").input_value(timeout=WAIT)
    assert len(secret) == 43
    expect(page.get_by_text("it will not be shown again")).to_be_visible()
    expect(page.get_by_role("button", name="Copy", exact=True)).to_be_visible()

    snippets = page.locator("pre code")
    node_code = snippets.filter(has_text="jsonwebtoken").inner_text()
    assert secret in node_code and 'algorithm: "HS256"' in node_code and 'expiresIn: "10m"' in node_code
    done = subprocess.run([node, "-e", node_code], cwd=NODE_DIR, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    link = done.stdout.strip()
    assert link.startswith(f"{web_server.url}/p/{pid}/?externalAuthCode=")

    # The link signs Ann in: opened in a browser of its own, she exists afterwards, made by the code.
    visitor = browser.new_context()
    try:
        visitor.new_page().goto(link)
        for _ in range(50):
            found = [u for u in users_of_pid(api, pid, staff) if u["externalId"] == "user-42"]
            if found:
                break
            visitor.pages[0].wait_for_timeout(200)
        else:
            raise AssertionError("the link did not sign the user in")
        assert found[0]["createdVia"] == "external_auth_code" and found[0]["email"] == "ann@example.com"
    finally:
        visitor.close()

    # The Python snippet works as well (PyJWT, as the tests use it).
    python_code = snippets.filter(has_text="PyJWT").inner_text()
    done = subprocess.run([sys.executable, "-c", python_code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    code = done.stdout.strip().split("externalAuthCode=", 1)[1]
    r = api.post(f"/v1/projects/{pid}/auth/external-code", json={"externalAuthCode": code})
    assert r.status_code == 200 and r.json()["created"] is False
    widget = snippets.filter(has_text="widget.js").inner_text()
    assert widget == (
        f'<script defer src="{web_server.url}/widget.js" data-project="{pid}" data-external-auth-code="CODE"></script>'
    )

    # Shown once: after a reload the secret is nowhere on the page.
    page.reload()
    expect(page.get_by_text("This project has a signing secret")).to_be_visible(timeout=WAIT)
    assert secret not in page.content()
    assert page.get_by_label("Signing secret").count() == 0

    # Regenerating asks first; cancelling keeps the secret, confirming replaces it.
    page.get_by_role("button", name="Generate secret").click()
    confirm(page, "Cancel")
    assert page.get_by_label("Signing secret").count() == 0
    old_code = hs256(secret, {"user": {"id": "user-42"}})
    assert api.post(f"/v1/projects/{pid}/auth/external-code", json={"externalAuthCode": old_code}).status_code == 200
    page.get_by_role("button", name="Generate secret").click()
    confirm(page, "Yes, generate a new secret")
    new_secret = page.get_by_label("Signing secret").input_value(timeout=WAIT)
    assert new_secret != secret
    r = api.post(f"/v1/projects/{pid}/auth/external-code", json={"externalAuthCode": old_code})
    assert r.status_code == 401 and r.json()["error"]["reason"] == "bad_signature"


def users_of_pid(api: httpx.Client, pid: str, staff: Staff) -> list[dict[str, Any]]:
    r = api.get(f"/v1/projects/{pid}/users", headers=staff.auth)
    assert r.status_code == 200, r.text
    return list(r.json()["users"])


# -- API keys ----------------------------------------------------------------------------------


def test_an_api_key_is_shown_once_and_can_be_revoked(
    page: Any, web_server: Server, api: httpx.Client, project: Project
) -> None:
    open_panel(page, web_server, project.owner, f"/projects/{project.id}/keys")
    page.get_by_label("Name").fill("kustomer chat settings")
    expect(page.get_by_label("org.admin")).to_be_checked()
    expect(page.get_by_label("org.user")).to_be_checked()
    page.get_by_label("Expires in days").fill("30")
    page.get_by_role("button", name="Create key").click()
    key = page.get_by_label(re.compile("^API key")).input_value(timeout=WAIT)
    assert key.startswith("cgk_")
    expect(page.get_by_text("it will not be shown again")).to_be_visible()
    row = page.get_by_role("row").filter(has_text="kustomer chat settings")
    expect(row).to_contain_text("org.admin, org.user")
    expect(row.get_by_role("cell").nth(4)).not_to_have_text("never")  # it expires
    settings = api.get("/v1/auth/customer/settings", headers={"Authorization": f"Bearer {key}"})
    assert settings.status_code == 200

    page.reload()
    expect(page.get_by_role("row").filter(has_text="kustomer chat settings")).to_be_visible(timeout=WAIT)
    assert key not in page.content()

    page.get_by_role("button", name="Revoke key kustomer chat settings").click()
    confirm(page, "Yes, revoke")
    expect(page.get_by_role("row").filter(has_text="kustomer chat settings")).to_contain_text("Revoked", timeout=WAIT)
    assert api.get("/v1/auth/customer/settings", headers={"Authorization": f"Bearer {key}"}).status_code == 401


# -- users ---------------------------------------------------------------------------------------


def test_users_search_filter_and_pages(page: Any, web_server: Server, api: httpx.Client, project: Project) -> None:
    for i in range(12):
        customer(api, project, f"pat-{i:02d}", email=f"pat-{i:02d}@example.com", firstname="Pat")
    customer(api, project, "zed-1", firstname="Zed", lastname="<b>Bold</b>")
    for _ in range(3):
        assert api.post("/v1/auth/signinAnonymously", json={"id_project": project.id}).status_code == 200
    open_panel(page, web_server, project.owner, f"/projects/{project.id}/users")
    expect(page.get_by_text("Seats: 13 used, no limit.")).to_be_visible(timeout=WAIT)
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(16)
    # Names are text, never markup.
    expect(page.get_by_role("link", name="Zed <b>Bold</b>")).to_be_visible()
    assert page.locator("tbody b").count() == 0

    page.get_by_label("Per page").select_option("10")
    expect(rows).to_have_count(10, timeout=WAIT)
    expect(rows.first).to_contain_text("pat-00")
    page.get_by_role("button", name="Next").click()
    expect(rows).to_have_count(6, timeout=WAIT)
    expect(rows.first).to_contain_text("pat-10")
    expect(page.get_by_role("button", name="Next")).to_be_disabled()
    page.get_by_role("button", name="Previous").click()
    expect(rows.first).to_contain_text("pat-00", timeout=WAIT)

    page.get_by_label("Search").fill("zed")
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(1, timeout=WAIT)
    expect(rows.first).to_contain_text("zed-1")

    page.get_by_label("Search").fill("")
    page.get_by_label("Created via").select_option("anonymous")
    expect(rows).to_have_count(3, timeout=WAIT)
    for text in rows.all_inner_texts():
        assert "Anonymous visitor" in text


def test_a_users_page_and_sign_out_everywhere(
    page: Any, web_server: Server, api: httpx.Client, project: Project
) -> None:
    code = hs256(
        project.secret, {"user": {"id": "ann-7", "email": "ann7@example.com", "firstname": "Ann", "plan": "pro"}}
    )
    tokens = []
    for _ in range(2):
        r = api.post(f"/v1/projects/{project.id}/auth/external-code", json={"externalAuthCode": code})
        assert r.status_code == 200, r.text
        tokens.append(r.json()["token"])
    user_id = r.json()["user"]["_id"]
    r = api.post(
        f"/v1/projects/{project.id}/conversations",
        json={"title": "Refund please"},
        headers={"Authorization": tokens[0]},
    )
    assert r.status_code == 201, r.text

    open_panel(page, web_server, project.owner, f"/projects/{project.id}/users")
    page.get_by_role("link", name="Ann").click()
    expect(page.get_by_role("heading", name="Ann", exact=True)).to_be_visible(timeout=WAIT)
    details = page.locator("dl.pairs").first
    for text in (user_id, "ann-7", "ann7@example.com (verified)", "External auth code"):
        expect(details).to_contain_text(text)
    metadata = page.locator("dl.pairs").nth(1)
    expect(metadata).to_contain_text("plan")
    expect(metadata).to_contain_text("pro")
    sessions = page.get_by_role("table", name="Active sessions").locator("tbody tr")
    expect(sessions).to_have_count(2, timeout=WAIT)
    expect(page.get_by_role("link", name="Refund please")).to_be_visible()

    page.get_by_role("button", name="Sign out everywhere").click()
    confirm(page, "Yes, sign out everywhere")
    expect(page.get_by_text("2 sessions ended")).to_be_visible(timeout=WAIT)
    expect(page.get_by_text("No active sessions.")).to_be_visible()
    for token in tokens:
        assert api.get(f"/v1/projects/{project.id}/auth/me", headers={"Authorization": token}).status_code == 401


# -- inbox ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def end_user_socket(server: Server, project: Project, token: str) -> Iterator[ClientConnection]:
    """The end user's own live socket (a synchronous client: frames queue while the browser is driven)."""
    address = server.url.replace("http://", "ws://", 1) + f"/v1/projects/{project.id}/ws"
    with connect(address, open_timeout=5, close_timeout=1) as ws:
        ws.send(json.dumps({"type": "auth", "token": token}))
        assert json.loads(ws.recv(timeout=5))["type"] == "ready"
        yield ws


def next_frame_of(ws: ClientConnection, kind: str) -> dict[str, Any]:
    while True:
        frame = json.loads(ws.recv(timeout=5))
        if frame["type"] == kind:
            return dict(frame)


def test_the_inbox_is_live_both_ways(page: Any, web_server: Server, api: httpx.Client, project: Project) -> None:
    ann = customer(api, project, "inbox-ann", firstname="Ann", lastname="Live")
    auth = {"Authorization": ann["token"]}
    open_panel(page, web_server, project.owner, f"/projects/{project.id}/inbox")
    expect(page.get_by_text("Live:")).to_be_visible(timeout=WAIT)
    expect(page.get_by_text("No conversations here yet.")).to_be_visible()
    page.evaluate("window.notReloaded = true")

    # The end user writes over REST: the conversation appears without a reload.
    cid = api.post(f"/v1/projects/{project.id}/conversations", json={"title": "Charged twice"}, headers=auth).json()[
        "id"
    ]
    r = api.post(
        f"/v1/projects/{project.id}/conversations/{cid}/messages",
        json={"text": "Hi, I was charged twice.", "client_id": "c-1"},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    item = page.get_by_role("listitem").filter(has=page.get_by_role("link", name="Charged twice"))
    expect(item).to_be_visible(timeout=WAIT)
    expect(item).to_contain_text("Ann Live")
    assert page.evaluate("window.notReloaded") is True

    page.get_by_role("link", name="Charged twice").click()
    log = page.get_by_role("log", name="Messages")
    expect(log).to_contain_text("Hi, I was charged twice.", timeout=WAIT)
    expect(page.get_by_text("Live:")).to_be_visible(timeout=WAIT)

    with end_user_socket(web_server, project, ann["token"]) as ws:
        # The agent replies in the panel; the end user's socket gets it live.
        page.get_by_label("Reply").fill("Sorry about that, Ann: the second charge is refunded.")
        page.get_by_role("button", name="Send").click()
        frame = next_frame_of(ws, "message.created")
        assert frame["message"]["text"] == "Sorry about that, Ann: the second charge is refunded."
        assert frame["message"]["sender"] == {"type": "agent", "id": project.owner.id}
        assert frame["message"]["clientId"]
        expect(log.get_by_role("listitem")).to_have_count(2)
        expect(page.get_by_label("Reply")).to_have_value("")

        # The user answers: the message shows up in the open conversation.
        api.post(f"/v1/projects/{project.id}/conversations/{cid}/messages", json={"text": "Thank you!"}, headers=auth)
        expect(log).to_contain_text("Thank you!", timeout=WAIT)
        assert page.evaluate("window.notReloaded") is True

        page.get_by_role("button", name="Close conversation").click()
        expect(page.get_by_role("button", name="Reopen")).to_be_visible(timeout=WAIT)
        assert next_frame_of(ws, "conversation.updated")["conversation"]["status"] == "closed"
    r = api.get(f"/v1/projects/{project.id}/conversations/{cid}", headers=project.owner.auth)
    assert r.json()["status"] == "closed"
    messages = api.get(f"/v1/projects/{project.id}/conversations/{cid}/messages", headers=auth).json()["messages"]
    assert [m["sender"]["type"] for m in messages] == ["user", "agent", "user"]

    # Closed conversations leave the open inbox.
    page.get_by_role("link", name="All conversations").click()
    expect(page.get_by_text("No conversations here yet.")).to_be_visible(timeout=WAIT)
    page.get_by_label("Show").select_option("closed")
    expect(page.get_by_role("link", name="Charged twice")).to_be_visible(timeout=WAIT)


def test_the_inbox_reconnects_and_catches_up_on_what_it_missed(
    page: Any, web_server: Server, api: httpx.Client, project: Project
) -> None:
    ann = customer(api, project, "away-ann", firstname="Ann")
    sockets: list[Any] = []

    def route(ws: Any) -> None:
        sockets.append(ws)
        ws.connect_to_server()

    open_panel(page, web_server, project.owner, f"/projects/{project.id}/inbox")
    page.route_web_socket(re.compile(r"/ws(\?|$)"), route)
    page.reload()
    expect(page.get_by_text("Live:")).to_be_visible(timeout=WAIT)
    assert len(sockets) == 1 and "after_seq" not in sockets[0].url

    # The connection drops (as a deploy closes it); the user writes before the panel is back
    # (it waits at least 0.75 s before its first attempt).
    sockets[0].close(code=1012, reason="restarting")
    auth = {"Authorization": ann["token"]}
    r = api.post(f"/v1/projects/{project.id}/conversations", json={"title": "Written while away"}, headers=auth)
    assert r.status_code == 201, r.text
    assert len(sockets) == 1
    expect(page.get_by_text("Live updates lost.")).to_be_visible(timeout=WAIT)

    # Back with after_seq: the missed conversation is replayed into the list.
    expect(page.get_by_role("link", name="Written while away")).to_be_visible(timeout=WAIT)
    assert len(sockets) == 2 and re.search(r"[?&]after_seq=\d+", sockets[1].url), [s.url for s in sockets]
    expect(page.get_by_text("Live:")).to_be_visible()


# -- audit ---------------------------------------------------------------------------------------------


def test_the_audit_log_filters_by_action_and_pages(
    page: Any, web_server: Server, api: httpx.Client, project: Project
) -> None:
    forged = hs256("not-the-secret-" + "x" * 40, {"externalId": "nobody", "iat": now()})
    for _ in range(55):
        r = api.post(f"/v1/projects/{project.id}/auth/customer/login", json={"jwtToken": forged})
        assert r.status_code == 401
    open_panel(page, web_server, project.owner, f"/projects/{project.id}/audit")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(50, timeout=WAIT)
    page.get_by_label("Action").fill("end_user:token:rejected")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(50, timeout=WAIT)
    for text in rows.all_inner_texts()[:5]:
        assert "end_user:token:rejected" in text and "bad_signature" in text
    page.get_by_role("button", name="Next").click()
    expect(rows).to_have_count(5, timeout=WAIT)
    expect(page.get_by_role("button", name="Next")).to_be_disabled()
    page.get_by_role("button", name="Previous").click()
    expect(rows).to_have_count(50, timeout=WAIT)
    assert forged not in page.content()


# -- token tester ---------------------------------------------------------------------------------------


def test_the_token_tester_explains_and_changes_nothing(
    page: Any, web_server: Server, api: httpx.Client, project: Project
) -> None:
    before = users_of(api, project)
    open_panel(page, web_server, project.owner, f"/projects/{project.id}/tester")
    fresh = hs256(project.secret, {"user": {"id": "tester-1", "firstname": "Tess"}, "jti": "once-only"})
    page.get_by_label("Token").fill(fresh)
    page.get_by_label("Method").select_option("external_code")
    page.get_by_role("button", name="Check").click()
    result = page.locator("#token-result")
    expect(result.get_by_role("heading", name="Accepted")).to_be_visible(timeout=WAIT)
    expect(result).to_contain_text("Create a new user")
    expect(result).to_contain_text("tester-1")

    forged = hs256("not-the-secret-" + "x" * 40, {"externalId": "who", "iat": now()})
    page.get_by_label("Token").fill(forged)
    page.get_by_label("Method").select_option(label="Customer login")
    page.get_by_role("button", name="Check").click()
    expect(result.get_by_role("heading", name="Refused")).to_be_visible(timeout=WAIT)
    expect(result.locator("code.reason")).to_have_text("bad_signature")

    expired = hs256(project.secret, {"user": {"id": "late"}, "exp": now() - 3600})
    page.get_by_label("Token").fill(expired)
    page.get_by_label("Method").select_option("external_code")
    page.get_by_role("button", name="Check").click()
    expect(result.locator("code.reason")).to_have_text("expired", timeout=WAIT)

    # Nothing was created, and the checked jti still signs in once.
    assert users_of(api, project) == before
    r = api.post(f"/v1/projects/{project.id}/auth/external-code", json={"externalAuthCode": fresh})
    assert r.status_code == 200 and r.json()["created"] is True


# -- members -----------------------------------------------------------------------------------------------


def test_members_invite_change_remove_and_the_last_owner(
    page: Any, web_server: Server, api: httpx.Client, project: Project
) -> None:
    colleague = sign_up_staff(api, "colleague")
    open_panel(page, web_server, project.owner, f"/projects/{project.id}/members")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(1, timeout=WAIT)

    page.get_by_label("Email").fill(unique_email("nobody"))
    page.get_by_role("button", name="Invite").click()
    missing = api.post(
        f"/v1/projects/{project.id}/members",
        json={"email": unique_email("x"), "role": "admin"},
        headers=project.owner.auth,
    ).json()["error"]["message"]
    expect(page.get_by_text(missing)).to_be_visible(timeout=WAIT)

    page.get_by_label("Email").fill(colleague.email)
    page.get_by_label("Role", exact=True).select_option("admin")
    page.get_by_role("button", name="Invite").click()
    expect(rows).to_have_count(2, timeout=WAIT)
    expect(rows.filter(has_text=colleague.email)).to_contain_text("admin")

    page.get_by_role("button", name=f"Make owner {colleague.email}").click()
    expect(rows.filter(has_text=colleague.email)).to_contain_text("owner", timeout=WAIT)
    page.get_by_role("button", name=f"Make admin {colleague.email}").click()
    expect(rows.filter(has_text=colleague.email)).to_contain_text("admin", timeout=WAIT)

    page.get_by_role("button", name=f"Remove {colleague.email}").click()
    confirm(page, "Yes, remove")
    expect(rows).to_have_count(1, timeout=WAIT)
    members = api.get(f"/v1/projects/{project.id}/members", headers=project.owner.auth).json()["members"]
    assert [m["email"] for m in members] == [project.owner.email]
    assert api.get(f"/v1/projects/{project.id}", headers=colleague.auth).status_code == 404

    # The only owner can neither step down nor leave.
    page.get_by_role("button", name=f"Make admin {project.owner.email}").click()
    expect(page.get_by_text("A project needs at least one owner")).to_be_visible(timeout=WAIT)
    page.reload()
    expect(rows).to_have_count(1, timeout=WAIT)
    expect(page.get_by_text("A project needs at least one owner")).to_have_count(0)
    page.get_by_role("button", name=f"Remove {project.owner.email}").click()
    confirm(page, "Yes, leave")
    expect(page.get_by_text("A project needs at least one owner")).to_be_visible(timeout=WAIT)
    assert api.get(f"/v1/projects/{project.id}/members", headers=project.owner.auth).json()["members"] == members


# -- for everyone ---------------------------------------------------------------------------------------------


def fill_project(api: httpx.Client, project: Project) -> str:
    """A user with a conversation, a key and a second member, so that every section has something to show."""
    ann = customer(api, project, "a11y-ann", email="a11y@example.com", firstname="Ann", plan="pro")
    cid = api.post(
        f"/v1/projects/{project.id}/conversations", json={"title": "Hello"}, headers={"Authorization": ann["token"]}
    ).json()["id"]
    api.post(
        f"/v1/projects/{project.id}/conversations/{cid}/messages",
        json={"text": "Hi there"},
        headers={"Authorization": ann["token"]},
    )
    api.post(
        f"/v1/projects/{project.id}/apikeys",
        json={"name": "backend", "roles": ["org.user"], "expires_in_days": None},
        headers=project.owner.auth,
    )
    return str(ann["user"]["_id"])


@pytest.mark.parametrize("width", [1280, 360])
def test_no_serious_accessibility_findings_and_no_sideways_scrolling(
    browser: Any, web_server: Server, api: httpx.Client, project: Project, width: int
) -> None:
    user_id = fill_project(api, project)
    context = browser.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    findings: dict[str, list[str]] = {}
    overflow: list[str] = []

    def check(name: str) -> None:
        page.wait_for_load_state("networkidle")
        found = serious_accessibility_violations(page)
        if found:
            findings[name] = found
        if not no_horizontal_scroll(page):
            overflow.append(name)

    try:
        page.goto(f"{web_server.url}/admin")
        expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=WAIT)
        check("sign in")
        page.get_by_role("link", name="Create a staff account").click()
        expect(page.get_by_role("button", name="Create account")).to_be_visible()
        check("sign up")
        open_panel(page, web_server, project.owner)
        expect(page.get_by_role("link", name="Support")).to_be_visible(timeout=WAIT)
        check("projects")
        page.get_by_role("link", name="Support").click()
        for name in SECTIONS:
            section(page, name)
            check(name)
        section(page, "Settings")
        page.get_by_role("button", name="Generate secret").click()
        confirm(page, "Yes, generate a new secret")
        secret = page.get_by_label("Signing secret").input_value(timeout=WAIT)
        check("settings with the secret shown")
        page.get_by_role("button", name="Generate secret").click()
        expect(page.get_by_role("dialog")).to_be_visible()
        check("confirmation dialog")
        page.keyboard.press("Escape")
        expect(page.get_by_role("dialog")).to_be_hidden()
        page.goto(f"{web_server.url}/admin#/projects/{project.id}/users/{user_id}")
        expect(page.get_by_role("heading", name="Ann", exact=True)).to_be_visible(timeout=WAIT)
        check("user page")
        section(page, "Inbox")
        page.get_by_role("link", name="Hello").click()
        expect(page.get_by_role("log", name="Messages")).to_contain_text("Hi there", timeout=WAIT)
        check("conversation")
        section(page, "Token tester")
        page.get_by_label("Token").fill(hs256(secret, {"user": {"id": "a11y-2"}}))
        page.get_by_role("button", name="Check").click()
        expect(page.locator("#token-result").get_by_role("heading", name="Accepted")).to_be_visible(timeout=WAIT)
        check("token tester result")
    finally:
        context.close()
    assert findings == {}
    assert overflow == []


def test_keyboard_only(page: Any, web_server: Server, api: httpx.Client, project: Project) -> None:
    api.post(
        f"/v1/projects/{project.id}/apikeys",
        json={"name": "old key", "roles": ["org.user"], "expires_in_days": None},
        headers=project.owner.auth,
    )
    page.goto(f"{web_server.url}/admin")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=WAIT)

    def tab_to(locator: Any, key: str = "Tab", limit: int = 40) -> None:
        for _ in range(limit):
            page.keyboard.press(key)
            if locator.evaluate("el => el === document.activeElement"):
                outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
                assert outline != "none", "focus is not visible"
                return
        raise AssertionError(f"Tab never reached {locator}")

    tab_to(page.get_by_label("Email"))
    page.keyboard.type(project.owner.email)
    tab_to(page.get_by_label("Password"))
    page.keyboard.type("a sturdy passphrase 42")
    page.keyboard.press("Enter")
    link = page.get_by_role("link", name="Support")
    expect(link).to_be_visible(timeout=WAIT)
    tab_to(link)
    page.keyboard.press("Enter")
    keys = page.get_by_role("navigation", name="Project sections").get_by_role("link", name="API keys")
    expect(keys).to_be_visible(timeout=WAIT)
    tab_to(keys, "Shift+Tab")  # the navigation comes before the section
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="API keys", exact=True)).to_be_focused(timeout=WAIT)

    revoke = page.get_by_role("button", name="Revoke key old key")
    expect(revoke).to_be_visible(timeout=WAIT)
    tab_to(revoke)
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Tab")
    expect(dialog.get_by_role("button", name="Yes, revoke")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("row").filter(has_text="old key")).to_contain_text("Revoked", timeout=WAIT)
    keys_now = api.get(f"/v1/projects/{project.id}/apikeys", headers=project.owner.auth).json()["apikeys"]
    assert [k["revoked"] for k in keys_now] == [True]
