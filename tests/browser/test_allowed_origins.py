"""A project's ``allowed_origins`` in a real browser: who may frame the chat and read the API."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conftest import Project, Server, make_project, sign_up_staff
from jwt_tools import hs256

pytestmark = pytest.mark.browser


def origin_of(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/')[0]}"


@pytest.fixture
def guarded_project(web_server: Server) -> Project:
    with httpx.Client(base_url=web_server.url) as api:
        return make_project(api, sign_up_staff(api, "origins"))


def allow(web_server: Server, project: Project, origins: list[str]) -> None:
    with httpx.Client(base_url=web_server.url) as api:
        r = api.patch(
            f"/v1/projects/{project.id}", json={"settings": {"allowed_origins": origins}}, headers=project.owner.auth
        )
        assert r.status_code == 200, r.text


def widget_page(host_site: Any, web_server: Server, project: Project, name: str) -> str:
    code = hs256(project.secret, {"user": {"id": name, "firstname": name}})
    return str(
        host_site(
            f"/{name}.html",
            f"""<!doctype html><html><body><h1>Shop</h1>
<script defer data-external-auth-code="{code}" src="{web_server.url}/widget.js" data-project="{project.id}"></script>
</body></html>""",
        )
    )


def test_only_listed_sites_may_frame_the_chat(
    page: Any, web_server: Server, guarded_project: Project, host_site: Any
) -> None:
    url = widget_page(host_site, web_server, guarded_project, "framed")
    allow(web_server, guarded_project, ["https://somewhere-else.example"])
    page.goto(url)
    page.click("#chatgate-bubble")
    page.wait_for_timeout(1500)
    chat_frames = [f for f in page.frames if f.url.startswith(web_server.url)]
    assert chat_frames == []  # the browser refused to render the chat inside this site

    allow(web_server, guarded_project, [origin_of(url)])
    page.goto(url)
    page.click("#chatgate-bubble")
    frame = page.frame_locator("#chatgate-frame")
    frame.locator("#signed-in:not([hidden])").wait_for(timeout=15_000)
    assert frame.locator("#user-name").text_content() == "framed"


def test_only_listed_sites_may_read_the_api(
    page: Any, web_server: Server, guarded_project: Project, host_site: Any
) -> None:
    url = host_site("/api.html", "<!doctype html><html><body>api</body></html>")
    page.goto(url)
    call = f"""async () => {{
        try {{
            const r = await fetch("{web_server.url}/v1/projects/{guarded_project.id}/auth/customer/login", {{
                method: "POST", headers: {{"Content-Type": "application/json"}}, body: JSON.stringify({{jwtToken: "x"}})
            }});
            return String(r.status);
        }} catch (e) {{ return "blocked"; }}
    }}"""
    assert page.evaluate(call) == "blocked"
    allow(web_server, guarded_project, [origin_of(url)])
    assert page.evaluate(call) == "401"  # the answer (a refused token) reaches the listed site
