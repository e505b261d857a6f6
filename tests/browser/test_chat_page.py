"""The chat page in a real browser: conversations, live messages, optimistic sending, guests and sign-out."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from browser_fixtures import serious_accessibility_violations
from conftest import Project, Server
from jwt_tools import hs256, now

pytestmark = pytest.mark.browser

WAIT = 15_000


def link(server: Server, project: Project, user_id: str, **profile: Any) -> str:
    code = hs256(project.secret, {"user": {"id": user_id, **profile}, "exp": now() + 600})
    return f"{server.url}/p/{project.id}/?externalAuthCode={code}"


def open_chat(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#signed-in:not([hidden])", timeout=WAIT)


def session_token(page: Any, project: Project) -> str:
    return str(page.evaluate(f"JSON.parse(localStorage.getItem('chatgate:{project.id}:session')).token"))


def write(page: Any, text: str) -> None:
    page.get_by_label("Message").fill(text)
    page.get_by_label("Message").press("Enter")


def sent(page: Any, text: str) -> Any:
    """The message with this text once the server has it (marked sent)."""
    item = page.locator('#message-list li[data-state="sent"]', has_text=text)
    item.wait_for(timeout=WAIT)
    return item


def texts(page: Any) -> list[str]:
    return [str(t) for t in page.locator("#message-list .text").all_text_contents()]


def api_messages(server: Server, project: Project, conversation_id: str) -> list[dict[str, Any]]:
    with httpx.Client(base_url=server.url) as api:
        r = api.get(
            f"/v1/projects/{project.id}/conversations/{conversation_id}/messages?limit=200",
            headers=project.owner.auth,
        )
        assert r.status_code == 200, r.text
        return list(r.json()["messages"])


def conversations_of(server: Server, project: Project, user_id: str) -> list[dict[str, Any]]:
    with httpx.Client(base_url=server.url) as api:
        r = api.get(f"/v1/projects/{project.id}/conversations?user_id={user_id}", headers=project.owner.auth)
        assert r.status_code == 200, r.text
        return list(r.json()["conversations"])


@pytest.fixture
def second_page(browser: Any) -> Iterator[Any]:
    """Another device: a browser context of its own (its own storage)."""
    context = browser.new_context()
    yield context.new_page()
    context.close()


def test_a_message_reaches_the_users_other_device_and_the_agents_reply_reaches_both(
    page: Any, second_page: Any, web_server: Server, web_project: Project
) -> None:
    open_chat(page, link(web_server, web_project, "two-devices", firstname="Tess"))
    open_chat(second_page, link(web_server, web_project, "two-devices", firstname="Tess"))
    page.wait_for_selector('#connection[data-state="live"]', timeout=WAIT)
    second_page.wait_for_selector('#connection[data-state="live"]', timeout=WAIT)

    write(page, "Hello from my phone")
    sent(page, "Hello from my phone")
    # The laptop shows it without a reload, and opens the new conversation in its list.
    second_page.locator("#conversation-list button").first.wait_for(timeout=WAIT)
    second_page.locator("#conversation-list button").first.click()
    sent(second_page, "Hello from my phone")

    user_id = page.get_attribute("body", "data-user-id")
    (conversation,) = conversations_of(web_server, web_project, user_id)
    with httpx.Client(base_url=web_server.url) as api:
        r = api.post(
            f"/v1/projects/{web_project.id}/conversations/{conversation['id']}/messages",
            json={"text": "Agent here, how can I help?"},
            headers=web_project.owner.auth,
        )
        assert r.status_code == 201, r.text
    for device in (page, second_page):
        reply = sent(device, "Agent here, how can I help?")
        assert reply.locator(".sender").text_content() == "Agent"
    assert texts(page) == ["Hello from my phone", "Agent here, how can I help?"]
    assert [m["text"] for m in api_messages(web_server, web_project, conversation["id"])] == texts(page)


def test_the_latest_conversation_opens_with_its_last_page_and_older_messages_load_on_scroll(
    page: Any, web_server: Server, web_project: Project
) -> None:
    url = link(web_server, web_project, "long-history", firstname="Hugo")
    open_chat(page, url)
    token = session_token(page, web_project)
    with httpx.Client(base_url=web_server.url, headers={"Authorization": token}) as api:
        base = f"/v1/projects/{web_project.id}/conversations"
        older = api.post(base, json={"title": "Old question"}).json()
        api.post(f"{base}/{older['id']}/messages", json={"text": "old conversation"})
        latest = api.post(base, json={"title": "Billing"}).json()
        for i in range(70):
            assert api.post(f"{base}/{latest['id']}/messages", json={"text": f"line {i:02d}"}).status_code == 201
    page.reload()
    page.wait_for_selector("#message-list li[data-id]", timeout=WAIT)
    assert page.text_content("#thread-title") == "Billing"
    assert texts(page)[-1] == "line 69"
    assert len(texts(page)) == 50  # one page
    # The reader is at the bottom; scrolling to the top loads the rest, in order.
    page.eval_on_selector("#messages", "el => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }")
    expect(page.locator("#message-list li")).to_have_count(70, timeout=WAIT)
    assert texts(page) == [f"line {i:02d}" for i in range(70)]
    assert page.is_hidden("#load-older")
    # The other conversation is one click away.
    page.get_by_role("button", name="Old question").click()
    sent(page, "old conversation")
    assert texts(page) == ["old conversation"]


def test_a_message_whose_answer_is_lost_is_retried_and_stored_once(
    page: Any, web_server: Server, web_project: Project
) -> None:
    open_chat(page, link(web_server, web_project, "flaky-network", firstname="Flo"))
    lost: list[str] = []

    def lose_the_first_answer(route: Any) -> None:
        if route.request.method == "POST" and not lost:
            route.fetch()  # the server stores the message...
            lost.append(route.request.post_data or "")
            route.abort("connectionreset")  # ...but its answer never arrives
        else:
            route.continue_()

    page.route("**/messages", lose_the_first_answer)
    write(page, "Did this arrive?")
    item = page.locator("#message-list li", has_text="Did this arrive?")
    item.wait_for(timeout=WAIT)
    sent(page, "Did this arrive?")
    assert lost and '"client_id"' in lost[0]
    user_id = page.get_attribute("body", "data-user-id")
    (conversation,) = conversations_of(web_server, web_project, user_id)
    assert [m["text"] for m in api_messages(web_server, web_project, conversation["id"])] == ["Did this arrive?"]
    page.reload()
    sent(page, "Did this arrive?")
    assert texts(page) == ["Did this arrive?"]


def test_after_a_dropped_socket_the_page_reconnects_and_catches_up(
    page: Any, web_server: Server, web_project: Project
) -> None:
    sockets: list[Any] = []

    def through(ws: Any) -> None:
        sockets.append(ws)
        ws.connect_to_server()

    page.route_web_socket("**/ws*", through)
    open_chat(page, link(web_server, web_project, "dropped-socket", firstname="Dora"))
    write(page, "first")
    sent(page, "first")
    page.wait_for_selector('#connection[data-state="live"]', timeout=WAIT)
    user_id = page.get_attribute("body", "data-user-id")
    (conversation,) = conversations_of(web_server, web_project, user_id)

    sockets[-1].close(code=1011, reason="network went away")
    page.wait_for_selector('#connection:not([data-state="live"])', timeout=WAIT)
    with httpx.Client(base_url=web_server.url) as api:
        r = api.post(
            f"/v1/projects/{web_project.id}/conversations/{conversation['id']}/messages",
            json={"text": "sent while you were away"},
            headers=web_project.owner.auth,
        )
        assert r.status_code == 201
    sent(page, "sent while you were away")
    page.wait_for_selector('#connection[data-state="live"]', timeout=WAIT)
    assert len(sockets) >= 2
    assert "after_seq=" in sockets[-1].url
    assert texts(page) == ["first", "sent while you were away"]


def test_a_guest_chat_stays_on_screen_and_moves_to_the_user_who_signs_in(
    page: Any, web_server: Server, web_project: Project
) -> None:
    page.goto(f"{web_server.url}/p/{web_project.id}/")
    page.wait_for_selector("#signed-in:not([hidden])", timeout=WAIT)
    assert page.text_content("#user-name") == "Guest"
    assert page.evaluate(f"localStorage.getItem('chatgate:{web_project.id}:session')") is None  # nobody yet
    write(page, "Question before signing in")
    sent(page, "Question before signing in")
    guest_id = page.get_attribute("body", "data-user-id")
    assert guest_id

    page.goto(link(web_server, web_project, "was-a-guest", firstname="Gwen"))
    expect(page.locator("#user-name")).to_have_text("Gwen", timeout=WAIT)
    sent(page, "Question before signing in")
    user_id = page.get_attribute("body", "data-user-id")
    assert user_id != guest_id
    (conversation,) = conversations_of(web_server, web_project, user_id)
    assert [m["text"] for m in api_messages(web_server, web_project, conversation["id"])] == [
        "Question before signing in"
    ]
    assert conversations_of(web_server, web_project, guest_id) == []


def test_no_guests_when_the_project_turns_anonymous_visitors_off(
    page: Any, web_server: Server, web_project: Project
) -> None:
    with httpx.Client(base_url=web_server.url) as api:
        change = {"settings": {"auth_methods": {"anonymous": False}}}
        assert api.patch(f"/v1/projects/{web_project.id}", json=change, headers=web_project.owner.auth).is_success
    try:
        page.goto(f"{web_server.url}/p/{web_project.id}/")
        page.wait_for_selector("#signed-out:not([hidden])", timeout=WAIT)
        assert page.is_hidden("#start-as-guest")
    finally:
        with httpx.Client(base_url=web_server.url) as api:
            change = {"settings": {"auth_methods": {"anonymous": True}}}
            api.patch(f"/v1/projects/{web_project.id}", json=change, headers=web_project.owner.auth)


def test_a_session_ended_elsewhere_shows_a_readable_page(page: Any, web_server: Server, web_project: Project) -> None:
    open_chat(page, link(web_server, web_project, "signed-out-elsewhere", firstname="Sam"))
    page.wait_for_selector('#connection[data-state="live"]', timeout=WAIT)
    token = session_token(page, web_project)
    with httpx.Client(base_url=web_server.url) as api:
        assert api.post("/v1/auth/logout", headers={"Authorization": token}).status_code == 200
    page.wait_for_selector("#error:not([hidden])", timeout=WAIT)
    assert page.get_attribute("#error", "data-code") == "session_revoked"
    assert page.text_content("#error-title") == "You were signed out"
    assert page.evaluate(f"localStorage.getItem('chatgate:{web_project.id}:session')") is None


def test_keyboard_only_use(page: Any, web_server: Server, web_project: Project) -> None:
    open_chat(page, link(web_server, web_project, "keyboard", firstname="Kay"))
    composer = page.get_by_label("Message")
    for _ in range(15):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "message-input":
            break
    else:
        raise AssertionError("Tab never reached the message box")
    page.keyboard.type("line one")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("line two")
    assert composer.input_value() == "line one\nline two"
    page.keyboard.press("Enter")
    sent(page, "line one")
    assert texts(page) == ["line one\nline two"]
    assert composer.input_value() == ""
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Send"


def test_small_screens_and_accessibility(page: Any, web_server: Server, web_project: Project) -> None:
    page.set_viewport_size({"width": 360, "height": 720})
    open_chat(page, link(web_server, web_project, "small-screen", firstname="Mo"))
    write(page, "from a small phone")
    sent(page, "from a small phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert page.get_by_role("button", name="Send").is_visible()
    # The list folds away behind a button on a phone.
    assert page.locator("#conversation-list").is_hidden()
    page.get_by_role("button", name="Conversations (1)").click()
    assert page.locator("#conversation-list").is_visible()
    assert serious_accessibility_violations(page) == []

    page.set_viewport_size({"width": 1280, "height": 800})
    assert page.locator("#conversation-list").is_visible()
    assert serious_accessibility_violations(page) == []
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_selector("#signed-out:not([hidden])")
    assert serious_accessibility_violations(page) == []


def test_error_pages_are_accessible(page: Any, web_server: Server, web_project: Project) -> None:
    page.goto(f"{web_server.url}/p/{web_project.id}/?externalAuthCode=not-a-token")
    page.wait_for_selector("#error:not([hidden])", timeout=WAIT)
    assert serious_accessibility_violations(page) == []
    page.goto(f"{web_server.url}/p/000000000000000000000000/")
    assert serious_accessibility_violations(page) == []


def test_messages_are_text_never_markup(page: Any, web_server: Server, web_project: Project) -> None:
    open_chat(page, link(web_server, web_project, "markup", firstname="<b>Bold</b>"))
    assert page.text_content("#user-name") == "<b>Bold</b>"
    write(page, '<img src=x onerror="window.owned=1">')
    sent(page, "<img")
    time.sleep(0.2)
    assert page.evaluate("window.owned") is None
    assert page.locator("#message-list img").count() == 0


def test_a_new_link_in_the_same_browser_ends_the_session_it_replaces(
    page: Any, web_server: Server, web_project: Project
) -> None:
    open_chat(page, link(web_server, web_project, "first-person", firstname="Fay"))
    first = session_token(page, web_project)
    open_chat(page, link(web_server, web_project, "second-person", firstname="Sid"))
    expect(page.locator("#user-name")).to_have_text("Sid", timeout=WAIT)
    second = session_token(page, web_project)
    with httpx.Client(base_url=web_server.url) as api:
        me = f"/v1/projects/{web_project.id}/auth/me"
        for _ in range(50):
            if api.get(me, headers={"Authorization": first}).status_code == 401:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the replaced session is still alive")
        assert api.get(me, headers={"Authorization": second}).status_code == 200


def test_a_session_that_ended_while_away_says_so_on_the_next_visit(
    page: Any, web_server: Server, web_project: Project
) -> None:
    open_chat(page, link(web_server, web_project, "came-back", firstname="Cole"))
    token = session_token(page, web_project)
    page.goto("about:blank")  # away: no open page hears the session end
    with httpx.Client(base_url=web_server.url) as api:
        assert api.post("/v1/auth/logout", headers={"Authorization": token}).is_success
    page.goto(f"{web_server.url}/p/{web_project.id}/")
    page.wait_for_selector("#signed-out:not([hidden])", timeout=WAIT)
    assert page.text_content("#signed-out-why") == "Your previous session has ended."
    page.get_by_role("button", name="Chat as a guest").click()
    assert page.text_content("#user-name") == "Guest"
    assert page.get_by_role("textbox", name="Message").is_visible()
