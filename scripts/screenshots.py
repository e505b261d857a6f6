"""Photograph the chat page, the widget and every admin section for the README (docs/screenshots/).

Starts a throwaway server (SQLite in a temporary directory), fills it with a
demo project through the public API, and drives Debian's Chromium with
Playwright. Run it with ``scripts/screenshots``; it rewrites the PNG files.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
PASSWORD = "demo passphrase for screenshots 42"
SECTIONS = ["Settings", "API keys", "Users", "Inbox", "Audit", "Token tester", "Members"]
WAIT = 15_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def chatgate_server() -> Iterator[str]:
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        env = {
            **os.environ,
            "CHATGATE_DATA_DIR": data,
            "CHATGATE_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "CHATGATE_LOG_LEVEL": "warning",
        }
        process = subprocess.Popen([sys.executable, "-m", "chatgate", "serve", "--port", str(port)], env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    if httpx.get(f"{url}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            process.wait(10)


@contextmanager
def host_site(html: dict[str, str]) -> Iterator[str]:
    """The customer's own site, on another origin, serving the widget's host page."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.get(self.path, "").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://localhost:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()


def code(secret: str, user_id: str, **profile: Any) -> str:
    return jwt.encode({"user": {"id": user_id, **profile}, "exp": int(time.time()) + 3600}, secret, algorithm="HS256")


def demo(url: str, shop: str) -> dict[str, Any]:
    """A project with a secret, a key, a few users and a conversation with an agent's answer."""
    with httpx.Client(base_url=url) as api:
        staff = {"email": "ada@example.com", "password": PASSWORD, "firstname": "Ada", "lastname": "Admin"}
        api.post("/v1/auth/signup", json=staff).raise_for_status()
        token = api.post("/v1/auth/signin", json={"email": staff["email"], "password": PASSWORD}).json()["token"]
        owner = {"Authorization": token}
        pid = api.post("/v1/projects", json={"name": "Acme Support"}, headers=owner).json()["_id"]
        secret = api.post(f"/v1/{pid}/keys/generate", headers=owner).json()["jwtSecret"]
        api.patch(f"/v1/projects/{pid}", json={"settings": {"allowed_origins": [shop], "seat_limit": 50}}, headers=owner)
        api.post(
            f"/v1/projects/{pid}/apikeys",
            json={"name": "Backend", "roles": ["org.user"], "expires_in_days": 90},
            headers=owner,
        ).raise_for_status()
        people = [("u-1001", "Ann", "Lee"), ("u-1002", "Bo", "Chen"), ("u-1003", "Cy", "Diaz")]
        sessions = {}
        for user_id, first, last in people:
            login = api.post(
                f"/v1/projects/{pid}/auth/external-code",
                json={"externalAuthCode": code(secret, user_id, firstname=first, lastname=last,
                                               email=f"{first.lower()}@example.com")},
            ).json()
            sessions[user_id] = {"Authorization": login["token"]}
        ann = sessions["u-1001"]
        conversation = api.post(f"/v1/projects/{pid}/conversations", json={"title": "Billing"}, headers=ann).json()
        path = f"/v1/projects/{pid}/conversations/{conversation['id']}/messages"
        api.post(path, json={"text": "Hi! I was charged twice this month."}, headers=ann).raise_for_status()
        api.post(path, json={"text": "Sorry about that, Ann: the second charge is refunded."}, headers=owner)
        api.post(path, json={"text": "Thank you, that was quick!"}, headers=ann)
        other = api.post(f"/v1/projects/{pid}/conversations", json={"title": "Export"}, headers=sessions["u-1002"])
        api.post(
            f"/v1/projects/{pid}/conversations/{other.json()['id']}/messages",
            json={"text": "Can I export my data as CSV?"},
            headers=sessions["u-1002"],
        )
        return {"pid": pid, "secret": secret, "staff": staff}


def shoot(page: Page, name: str) -> None:
    page.wait_for_timeout(300)  # let fonts and the last frame settle
    page.screenshot(path=str(OUT / f"{name}.png"))
    print(f"docs/screenshots/{name}.png")


def chat(page: Page, url: str, project: dict[str, Any]) -> None:
    link = f"{url}/p/{project['pid']}/?externalAuthCode={code(project['secret'], 'u-1001')}"
    page.goto(link)
    expect(page.locator('#message-list li[data-state="sent"]').first).to_be_visible(timeout=WAIT)
    page.get_by_label("Message").fill("One more question: can I change my plan?")
    shoot(page, "chat")
    page.set_viewport_size({"width": 360, "height": 740})
    shoot(page, "chat-phone")
    page.set_viewport_size({"width": 1280, "height": 800})


def widget(page: Page, shop: str) -> None:
    page.goto(f"{shop}/")
    page.get_by_role("button", name="Open chat").click()
    page.frame_locator("iframe").locator("#signed-in:not([hidden])").wait_for(timeout=WAIT)
    page.wait_for_timeout(800)
    shoot(page, "widget")


def admin(page: Page, url: str, project: dict[str, Any]) -> None:
    page.goto(f"{url}/admin")
    page.get_by_label("Email").fill(project["staff"]["email"])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Acme Support").click()
    nav = page.get_by_role("navigation", name="Project sections")
    for name in SECTIONS:
        nav.get_by_role("link", name=name, exact=True).click()
        expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible(timeout=WAIT)
        if name == "Inbox":
            page.get_by_text("Billing").first.click()
            expect(page.get_by_label("Reply")).to_be_visible(timeout=WAIT)
        if name == "Token tester":
            page.get_by_label("Token").fill(code(project["secret"], "u-2001", firstname="Dee"))
            page.get_by_role("button", name="Check").click()
            page.wait_for_timeout(800)
        shoot(page, "admin-" + name.lower().replace(" ", "-"))


def main() -> None:
    chromium = os.environ.get("CHATGATE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    OUT.mkdir(parents=True, exist_ok=True)
    pages: dict[str, str] = {}
    with chatgate_server() as url, host_site(pages) as shop:
        project = demo(url, shop)
        pages["/"] = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Acme shop</title></head>
<body style="font:16px system-ui;margin:0;padding:2rem 3rem;background:#fbfaf7">
<h1>Acme shop</h1><p>Our products, your account, and a chat with us in the corner.</p>
<script defer src="{url}/widget.js" data-project="{project['pid']}"
        data-external-auth-code="{code(project['secret'], 'u-1001')}"></script></body></html>"""
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            context = browser.new_context(viewport={"width": 1280, "height": 800}, device_scale_factor=1)
            page = context.new_page()
            chat(page, url, project)
            widget(context.new_page(), shop)
            admin(context.new_page(), url, project)
            browser.close()


if __name__ == "__main__":
    main()
