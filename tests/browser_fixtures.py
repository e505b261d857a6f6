"""A real Chromium (Debian's package) driven by Playwright, against a real server."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Project, Server, make_project, sign_up_staff, start_server


def chromium_path() -> str | None:
    for candidate in (
        os.environ.get("CHATGATE_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        pytest.skip("Chromium is not installed (apt-get install chromium, or set CHATGATE_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=path,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A fresh server whose first project is the default one served at /."""
    srv = start_server(tmp_path_factory.mktemp("web"), None, workers=1)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def web_project(web_server: Server) -> Project:
    with httpx.Client(base_url=web_server.url) as api:
        return make_project(api, sign_up_staff(api, "web"))


@pytest.fixture
def host_site() -> Iterator[Any]:
    """Another origin (the customer's site) that serves whatever page a test gives it."""
    pages: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path.split("?")[0], "not found").encode()
            self.send_response(200 if self.path.split("?")[0] in pages else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()

    def serve(path: str, html: str) -> str:
        pages[path] = html
        return f"http://localhost:{httpd.server_address[1]}{path}"

    yield serve
    httpd.shutdown()


AXE = Path(__file__).parent / "node" / "node_modules" / "axe-core" / "axe.min.js"


def serious_accessibility_violations(page: Any) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now (empty when clean).

    axe is evaluated through the DevTools protocol, so the page's CSP (no inline
    scripts) stays in force for everything else.
    """
    if not AXE.is_file():
        pytest.skip("axe-core is not installed (cd tests/node && npm ci)")
    page.evaluate(AXE.read_text(encoding="utf-8"))
    results = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]
