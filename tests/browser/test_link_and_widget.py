"""Contract §4.3 in a real browser: the sign-in link and the widget."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conftest import Project, Server
from jwt_tools import hs256, now

pytestmark = pytest.mark.browser


def signed_in_name(page: Any) -> str:
    page.wait_for_selector("#signed-in:not([hidden])", timeout=15_000)
    return str(page.text_content("#user-name"))


def count_users(server: Server, project: Project) -> int:
    with httpx.Client(base_url=server.url) as api:
        return len(api.get(f"/v1/projects/{project.id}/users", headers=project.owner.auth).json()["users"])


def test_link_signs_in_removes_the_code_and_keeps_the_session(
    page: Any, web_server: Server, web_project: Project
) -> None:
    code = hs256(
        web_project.secret,
        {"user": {"id": "link-1", "email": "linda@example.com", "firstname": "Linda"}, "exp": now() + 600},
    )
    posts: list[str] = []
    page.on("request", lambda req: posts.append(f"{req.method} {req.url}") if "/auth/" in req.url else None)
    page.goto(f"{web_server.url}/p/{web_project.id}/?externalAuthCode={code}&utm=keep")
    assert signed_in_name(page) == "Linda"
    assert "externalAuthCode" not in page.url
    assert page.url.endswith("?utm=keep")
    assert any(p.startswith("POST") and p.endswith("/auth/external-code") for p in posts)
    stored = page.evaluate(f"localStorage.getItem('chatgate:{web_project.id}:session')")
    assert stored and "JWT " in stored and code not in stored
    # A reload keeps the session without the code.
    posts.clear()
    page.reload()
    assert signed_in_name(page) == "Linda"
    assert not any(p.endswith("/auth/external-code") for p in posts)
    # Sign out ends the session on the server too.
    token = page.evaluate(f"JSON.parse(localStorage.getItem('chatgate:{web_project.id}:session')).token")
    page.click("#sign-out")
    page.wait_for_selector("#signed-out:not([hidden])")
    with httpx.Client(base_url=web_server.url) as api:
        for _ in range(20):
            if api.get(f"/v1/projects/{web_project.id}/auth/me", headers={"Authorization": token}).status_code == 401:
                break
        else:
            raise AssertionError("the session survived sign-out")


def test_default_project_is_served_at_the_root(page: Any, web_server: Server, web_project: Project) -> None:
    code = hs256(web_project.secret, {"user": {"id": "root-1", "firstname": "Rooty"}})
    page.goto(f"{web_server.url}/?externalAuthCode={code}")
    assert signed_in_name(page) == "Rooty"
    assert page.url == f"{web_server.url}/"


def test_bad_codes_show_a_readable_error_page(page: Any, web_server: Server, web_project: Project) -> None:
    before = count_users(web_server, web_project)
    cases = {
        "forged": hs256("not-the-secret-" + "x" * 40, {"user": {"id": "bad"}}),
        "expired": hs256(web_project.secret, {"user": {"id": "bad"}, "exp": now() - 3600}),
        "garbage": "not-a-token",
    }
    for name, code in cases.items():
        page.goto(f"{web_server.url}/p/{web_project.id}/?externalAuthCode={code}")
        page.wait_for_selector("#error:not([hidden])", timeout=15_000)
        assert page.get_attribute("#error", "data-code") == "invalid_token", name
        assert "does not work" in str(page.text_content("#error-title")), name
        assert "externalAuthCode" not in page.url
    assert count_users(web_server, web_project) == before


def test_over_the_seat_limit_shows_the_seat_error(page: Any, web_server: Server, web_project: Project) -> None:
    with httpx.Client(base_url=web_server.url) as api:
        used = api.get(f"/v1/projects/{web_project.id}/users", headers=web_project.owner.auth).json()["seats"]["used"]
        api.patch(
            f"/v1/projects/{web_project.id}", json={"settings": {"seat_limit": used}}, headers=web_project.owner.auth
        )
    try:
        code = hs256(web_project.secret, {"user": {"id": "one-too-many"}})
        page.goto(f"{web_server.url}/p/{web_project.id}/?externalAuthCode={code}")
        page.wait_for_selector("#error:not([hidden])", timeout=15_000)
        assert page.get_attribute("#error", "data-code") == "seat_limit_reached"
        assert "No free seat" in str(page.text_content("#error-title"))
        assert len(str(page.text_content("#error-text"))) > 20
    finally:
        with httpx.Client(base_url=web_server.url) as api:
            api.patch(
                f"/v1/projects/{web_project.id}",
                json={"settings": {"seat_limit": None}},
                headers=web_project.owner.auth,
            )


def test_unknown_project_page_is_readable(page: Any, web_server: Server) -> None:
    response = page.goto(f"{web_server.url}/p/000000000000000000000000/")
    assert response.status == 404
    assert "Unknown chat" in str(page.text_content("#error-title"))


def test_widget_signs_the_visitor_in_on_another_site(
    page: Any, web_server: Server, web_project: Project, host_site: Any
) -> None:
    code = hs256(web_project.secret, {"user": {"id": "widget-1", "firstname": "Wendy"}})
    users_before = count_users(web_server, web_project)
    url = host_site(
        "/shop.html",
        f"""<!doctype html><html><body><h1>Our shop</h1>
<script defer data-external-auth-code="{code}" src="{web_server.url}/widget.js"
        data-project="{web_project.id}"></script>
</body></html>""",
    )
    to_chatgate: list[str] = []
    page.on("request", lambda req: to_chatgate.append(req.url) if req.url.startswith(web_server.url) else None)
    page.goto(url)
    page.wait_for_selector("#chatgate-bubble")
    page.wait_for_timeout(500)
    # Until the visitor opens the chat: only the script, no frame, no sign-in.
    assert to_chatgate == [f"{web_server.url}/widget.js"]
    assert page.locator("iframe").count() == 0
    assert count_users(web_server, web_project) == users_before

    page.click("#chatgate-bubble")
    frame = page.frame_locator("#chatgate-frame")
    frame.locator("#signed-in:not([hidden])").wait_for(timeout=15_000)
    assert frame.locator("#user-name").text_content() == "Wendy"
    src = str(page.get_attribute("#chatgate-frame", "src"))
    assert src.startswith(f"{web_server.url}/p/{web_project.id}/?embed=1#externalAuthCode=")
    assert code not in src.split("#")[0]  # the code never travels in the query
    assert any(u.endswith(f"/v1/projects/{web_project.id}/auth/external-code") for u in to_chatgate)
    assert count_users(web_server, web_project) == users_before + 1


def test_widget_without_data_project_uses_the_default_project(
    page: Any, web_server: Server, web_project: Project, host_site: Any
) -> None:
    code = hs256(web_project.secret, {"user": {"id": "widget-2", "firstname": "Dee"}})
    url = host_site(
        "/blog.html",
        f"""<!doctype html><html><body>
<script defer data-external-auth-code="{code}" src="{web_server.url}/widget.js"></script></body></html>""",
    )
    page.goto(url)
    page.wait_for_selector("#chatgate-bubble")
    assert page.locator("iframe").count() == 0
    page.click("#chatgate-bubble")
    assert page.get_attribute("#chatgate-frame", "src").startswith(f"{web_server.url}/?embed=1#externalAuthCode=")
    frame = page.frame_locator("#chatgate-frame")
    frame.locator("#signed-in:not([hidden])").wait_for(timeout=15_000)
    assert frame.locator("#user-name").text_content() == "Dee"
