"""The widget's JavaScript API (window.Chatgate, window.Kustomer) on a customer's site, in real Chromium.

The customer's site is ``host_site`` (``http://localhost:<port>``); Chatgate is
``web_server`` (``http://127.0.0.1:<port>``), so every page here is
cross-origin to the chat, as in production.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from browser_fixtures import chromium_path, serious_accessibility_violations
from conftest import Project, Server, make_project, sign_up_staff, unique_email
from jwt_tools import hs256, now

pytestmark = pytest.mark.browser

RECORDER = """<script>
window.seen = [];
window.events = [];
window.addEventListener("message", function (e) { window.seen.push(JSON.stringify(e.data)); });
window.addEventListener("chatgateLoaded", function () {
  ["login", "logout", "open", "close", "message"].forEach(function (name) {
    Chatgate.on(name, function (data) { window.events.push([name, data]); });
  });
});
</script>"""


def origin_of(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/')[0]}"


@dataclass
class Shop:
    """A page on the customer's site embedding the widget for ``project``."""

    url: str
    origin: str
    project: Project


def set_origins(server: Server, project: Project, origins: list[str]) -> None:
    with httpx.Client(base_url=server.url) as api:
        r = api.patch(
            f"/v1/projects/{project.id}", json={"settings": {"allowed_origins": origins}}, headers=project.owner.auth
        )
        assert r.status_code == 200, r.text


@pytest.fixture
def fresh_project(web_server: Server) -> Project:
    with httpx.Client(base_url=web_server.url) as api:
        return make_project(api, sign_up_staff(api, "widget"))


@pytest.fixture
def shop(web_server: Server, fresh_project: Project, host_site: Any) -> Callable[..., Shop]:
    """``shop(attrs="", body="", allow=True)``: serves a shop page; ``allow`` lists its origin in allowed_origins."""

    def serve(attrs: str = "", body: str = "", allow: bool | list[str] = True) -> Shop:
        url = host_site(
            "/shop.html",
            f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Our shop</title></head>
<body><main><h1>Our shop</h1><p>Things for sale.</p></main>{RECORDER}{body}
<script defer src="{web_server.url}/widget.js" data-project="{fresh_project.id}" {attrs}></script>
</body></html>""",
        )
        origin = origin_of(url)
        if allow is True:
            set_origins(web_server, fresh_project, [origin])
        elif allow:
            set_origins(web_server, fresh_project, allow)
        return Shop(url, origin, fresh_project)

    return serve


def visit(page: Any, shop: Shop) -> None:
    page.goto(shop.url)
    page.wait_for_function("window.Chatgate && document.getElementById('chatgate-bubble')")


def call(page: Any, method: str, *args: Any, api: str = "Chatgate") -> dict[str, Any]:
    """``window[api][method](...args, callback)``; returns what the callback got as {response, error}."""
    result = page.evaluate(
        """([api, method, args]) => new Promise((resolve) => {
            window[api][method](...args, (response, error) => resolve({response, error}));
        })""",
        [api, method, list(args)],
    )
    assert (result["response"] is None) != (result["error"] is None), result
    return dict(result)


def chat_frame(page: Any) -> Any:
    handle = page.wait_for_selector("#chatgate-frame", state="attached")
    frame = handle.content_frame()
    frame.wait_for_load_state()
    return frame


def stored_session(page: Any, project: Project) -> dict[str, Any] | None:
    """The session as the chat frame keeps it (in localStorage, or in memory where the browser refuses
    storage to a third-party frame, as this test browser does)."""
    stored = chat_frame(page).evaluate("window.ChatgateSessionStore.load()")
    return dict(stored) if stored else None


def customer_token(project: Project, **claims: Any) -> str:
    return hs256(project.secret, {"iat": now(), **claims})


def users_matching(server: Server, project: Project, q: str) -> list[dict[str, Any]]:
    with httpx.Client(base_url=server.url) as api:
        r = api.get(f"/v1/projects/{project.id}/users", params={"q": q}, headers=project.owner.auth)
        assert r.status_code == 200, r.text
        return list(r.json()["users"])


def session_status(server: Server, project: Project, token: str) -> int:
    with httpx.Client(base_url=server.url) as api:
        return api.get(f"/v1/projects/{project.id}/auth/me", headers={"Authorization": token}).status_code


def events(page: Any, name: str) -> list[Any]:
    return [data for event, data in page.evaluate("window.events") if event == name]


def wait_for_event(page: Any, name: str, count: int = 1) -> list[Any]:
    page.wait_for_function(
        "([name, count]) => window.events.filter((e) => e[0] === name).length >= count", arg=[name, count]
    )
    return events(page, name)


# -- loading --------------------------------------------------------------------


def test_nothing_loads_until_the_visitor_opens_the_chat(
    page: Any, web_server: Server, shop: Callable[..., Shop]
) -> None:
    site = shop()
    to_chatgate: list[str] = []
    page.on("request", lambda req: to_chatgate.append(req.url) if req.url.startswith(web_server.url) else None)
    visit(page, site)
    page.evaluate("Chatgate.on('login', function () {})")  # listening is not calling
    page.wait_for_timeout(800)
    assert to_chatgate == [f"{web_server.url}/widget.js"]
    assert page.locator("iframe").count() == 0
    launcher = page.get_by_role("button", name="Open chat")
    assert launcher.get_attribute("aria-expanded") == "false"

    launcher.click()
    frame = page.locator("#chatgate-frame")
    assert frame.get_attribute("src") == f"{web_server.url}/p/{site.project.id}/?embed=1"
    assert frame.get_attribute("title") == "Chat"
    assert frame.is_visible()
    assert page.get_by_role("button", name="Close chat").get_attribute("aria-expanded") == "true"
    assert any(url.startswith(f"{web_server.url}/p/{site.project.id}/") for url in to_chatgate)
    wait_for_event(page, "open")

    page.get_by_role("button", name="Close chat").click()
    assert not frame.is_visible()
    wait_for_event(page, "close")


def test_an_api_call_loads_the_chat_without_showing_it(
    page: Any, web_server: Server, shop: Callable[..., Shop]
) -> None:
    site = shop()
    to_api: list[str] = []
    page.on("request", lambda req: to_api.append(req.url) if "/v1/" in req.url else None)
    visit(page, site)
    page.wait_for_timeout(500)
    assert to_api == [] and page.locator("iframe").count() == 0

    nobody = call(page, "isLoggedIn", {"email": "nobody@example.com"})
    assert nobody == {"response": {"isLoggedIn": False}, "error": None}
    assert page.locator("#chatgate-frame").count() == 1
    assert not page.locator("#chatgate-frame").is_visible()
    assert page.get_by_role("button", name="Open chat").is_visible()


def test_start_hides_the_launcher_opens_the_panel_and_reports_ready(page: Any, shop: Callable[..., Shop]) -> None:
    site = shop()
    visit(page, site)
    result = call(page, "start", {"hideLauncher": True, "open": True})
    assert result["response"] == {"project": site.project.id}
    assert not page.locator("#chatgate-bubble").is_visible()
    assert page.locator("#chatgate-frame").is_visible()
    assert page.evaluate("Chatgate.isOpen()") is True
    call(page, "close")
    assert not page.locator("#chatgate-frame").is_visible()
    assert page.evaluate("Chatgate.isOpen()") is False
    call(page, "start", {"hideLauncher": False})
    assert page.locator("#chatgate-bubble").is_visible()


def test_calls_made_before_the_chat_is_ready_are_answered_in_turn(
    page: Any, web_server: Server, shop: Callable[..., Shop]
) -> None:
    site = shop()
    email = unique_email("early")
    visit(page, site)
    results = page.evaluate(
        """([token, email]) => new Promise((resolve) => {
            const out = [];
            const done = (name) => (response, error) => {
                out.push([name, response, error]);
                if (out.length === 3) { resolve(out); }
            };
            Chatgate.isLoggedIn({email}, done("before"));
            Chatgate.login({jwtToken: token}, done("login"));
            Chatgate.isLoggedIn({email}, done("after"));
        })""",
        [customer_token(site.project, email=email), email],
    )
    assert [(name, error) for name, _, error in results] == [("before", None), ("login", None), ("after", None)]
    assert results[0][1] == {"isLoggedIn": False}
    assert results[1][1]["email"] == email
    assert results[2][1] == {"isLoggedIn": True}


# -- signing in and out -----------------------------------------------------------


def test_login_is_logged_in_and_logout(page: Any, web_server: Server, shop: Callable[..., Shop]) -> None:
    site = shop()
    email = unique_email("kim")
    visit(page, site)

    result = call(page, "login", {"jwtToken": customer_token(site.project, email=email, firstname="Kim")})
    response = result["response"]
    assert response["email"] == email and response["externalId"] is None
    assert response["user"]["email"] == email and response["user"]["createdVia"] == "customer_login"
    assert response["merged_conversations"] == 0
    assert "token" not in response
    assert [u["_id"] for u in users_matching(web_server, site.project, email)] == [response["user"]["_id"]]
    assert wait_for_event(page, "login")[0]["email"] == email
    call(page, "open")
    chat = page.frame_locator("#chatgate-frame")
    chat.locator("#signed-in:not([hidden])").wait_for()  # the chat page took the session the bridge kept
    assert chat.locator("#user-name").text_content() == "Kim"

    assert call(page, "isLoggedIn", {"email": email})["response"] == {"isLoggedIn": True}
    assert call(page, "isLoggedIn", {"email": unique_email("other")})["response"] == {"isLoggedIn": False}
    session = stored_session(page, site.project)
    assert session and session["user"]["email"] == email
    assert session_status(web_server, site.project, session["token"]) == 200

    assert call(page, "logout") == {"response": {"success": True}, "error": None}
    assert call(page, "isLoggedIn", {"email": email})["response"] == {"isLoggedIn": False}
    assert session_status(web_server, site.project, session["token"]) == 401
    assert stored_session(page, site.project) is None
    wait_for_event(page, "logout")
    chat_frame(page).wait_for_function("() => !document.body.innerText.includes('Kim')")  # the chat let go of Kim


def test_login_by_external_id(page: Any, web_server: Server, shop: Callable[..., Shop]) -> None:
    site = shop()
    visit(page, site)
    response = call(page, "login", {"jwtToken": customer_token(site.project, externalId="cust-77")})["response"]
    assert response["externalId"] == "cust-77" and response["email"] is None
    assert call(page, "isLoggedIn", {"externalId": "cust-77"})["response"] == {"isLoggedIn": True}
    assert call(page, "isLoggedIn", {"externalId": "cust-78"})["response"] == {"isLoggedIn": False}


def test_refused_logins_answer_the_apis_error_and_sign_nobody_in(
    page: Any, web_server: Server, shop: Callable[..., Shop]
) -> None:
    site = shop()
    email = unique_email("late")
    visit(page, site)
    stale = customer_token(site.project, email=email, iat=now() - 3600)
    error = call(page, "login", {"jwtToken": stale})["error"]
    assert error["code"] == "invalid_token" and error["reason"] == "iat_too_old" and error["message"]
    forged = hs256("not-the-secret-" + "x" * 40, {"email": email, "iat": now()})
    assert call(page, "login", {"jwtToken": forged})["error"]["code"] == "invalid_token"
    assert call(page, "login", {})["error"]["code"] == "validation_failed"
    assert call(page, "isLoggedIn", {})["error"]["code"] == "validation_failed"
    assert call(page, "isLoggedIn", {"email": email})["response"] == {"isLoggedIn": False}
    assert users_matching(web_server, site.project, email) == []
    assert stored_session(page, site.project) is None
    assert events(page, "login") == []


def test_login_with_a_custom_token_and_the_events(page: Any, web_server: Server, shop: Callable[..., Shop]) -> None:
    site = shop()
    visit(page, site)
    token = hs256(
        site.project.secret,
        {
            "_id": "tiledesk-9",
            "sub": "userexternal",
            "aud": f"{web_server.url}/projects/{site.project.id}",
            "firstname": "Tia",
        },
    )
    response = call(page, "loginWithCustomToken", token)["response"]
    assert response["externalId"] == "tiledesk-9"
    assert response["user"]["createdVia"] == "custom_token" and response["user"]["firstname"] == "Tia"
    assert call(page, "isLoggedIn", {"externalId": "tiledesk-9"})["response"] == {"isLoggedIn": True}
    assert wait_for_event(page, "login")[0]["externalId"] == "tiledesk-9"

    # A token for another project is refused here, and its session is not kept.
    with httpx.Client(base_url=web_server.url) as api:
        elsewhere = make_project(api, site.project.owner)
    stranger = hs256(
        elsewhere.secret, {"_id": "else-1", "sub": "userexternal", "aud": f"{web_server.url}/projects/{elsewhere.id}"}
    )
    assert call(page, "loginWithCustomToken", stranger)["error"]["code"] == "invalid_token"
    assert call(page, "isLoggedIn", {"externalId": "tiledesk-9"})["response"] == {"isLoggedIn": True}

    call(page, "open")
    assert page.locator("#chatgate-frame").is_visible()
    assert page.get_by_role("button", name="Close chat").is_visible()
    call(page, "close")
    assert not page.locator("#chatgate-frame").is_visible()
    assert page.get_by_role("button", name="Open chat").is_visible()
    call(page, "logout")
    wait_for_event(page, "logout")
    assert len(events(page, "open")) == 1 and len(events(page, "close")) == 1


def test_a_visitors_conversations_follow_them_into_their_account(
    page: Any, web_server: Server, shop: Callable[..., Shop]
) -> None:
    site = shop()
    with httpx.Client(base_url=web_server.url) as api:
        r = api.post("/v1/auth/signinAnonymously", json={"id_project": site.project.id})
        assert r.status_code == 200, r.text
        visitor = r.json()
        r = api.post(
            f"/v1/projects/{site.project.id}/conversations",
            json={"title": "Where is my parcel?"},
            headers={"Authorization": visitor["token"]},
        )
        assert r.status_code == 201, r.text
        conversation = r.json()
    visit(page, site)
    call(page, "open")
    chat_frame(page).evaluate(
        "session => window.ChatgateSessionStore.save(session)", {"token": visitor["token"], "user": visitor["user"]}
    )
    email = unique_email("parcel")
    response = call(page, "login", {"jwtToken": customer_token(site.project, email=email)})["response"]
    assert response["merged_conversations"] == 1
    session = stored_session(page, site.project)
    assert session and session["user"]["email"] == email
    with httpx.Client(base_url=web_server.url) as api:
        mine = api.get(f"/v1/projects/{site.project.id}/conversations", headers={"Authorization": session["token"]})
        assert mine.status_code == 200, mine.text
        assert [c["id"] for c in mine.json()["conversations"]] == [conversation["id"]]
    assert session_status(web_server, site.project, visitor["token"]) == 401  # the visitor's session ended


def test_the_external_code_signs_in_on_open_and_tells_the_page(
    page: Any, web_server: Server, fresh_project: Project, shop: Callable[..., Shop]
) -> None:
    code = hs256(fresh_project.secret, {"user": {"id": "ext-5", "email": "ext5@example.com", "firstname": "Eve"}})
    site = shop(attrs=f'data-external-auth-code="{code}"')
    to_api: list[str] = []
    page.on("request", lambda req: to_api.append(req.url) if "/v1/" in req.url else None)
    visit(page, site)
    page.wait_for_timeout(500)
    assert to_api == [] and page.locator("iframe").count() == 0
    page.get_by_role("button", name="Open chat").click()
    login = wait_for_event(page, "login")[0]
    assert login["externalId"] == "ext-5" and login["email"] == "ext5@example.com"
    assert any(url.endswith("/auth/external-code") for url in to_api)
    src = str(page.get_attribute("#chatgate-frame", "src"))
    assert src.startswith(f"{web_server.url}/p/{site.project.id}/?embed=1#externalAuthCode=")
    assert call(page, "isLoggedIn", {"externalId": "ext-5"})["response"] == {"isLoggedIn": True}


# -- origins ------------------------------------------------------------------------


def test_a_site_missing_from_allowed_origins_gets_origin_not_allowed(
    page: Any, web_server: Server, shop: Callable[..., Shop]
) -> None:
    site = shop(allow=["https://shop.example"])
    email = unique_email("blocked")
    visit(page, site)
    error = call(page, "login", {"jwtToken": customer_token(site.project, email=email)})["error"]
    assert error["code"] == "origin_not_allowed"
    assert "allowed_origins" in error["message"] and site.origin in error["message"]
    assert call(page, "isLoggedIn", {"email": email})["error"]["code"] == "origin_not_allowed"
    assert call(page, "start")["error"]["code"] == "origin_not_allowed"
    assert users_matching(web_server, site.project, email) == []
    assert [f for f in page.frames if f.url.startswith(web_server.url)] == []


def test_a_project_without_allowed_origins_refuses_commands_but_still_chats(
    page: Any, web_server: Server, shop: Callable[..., Shop]
) -> None:
    site = shop(allow=False)
    email = unique_email("nolist")
    visit(page, site)
    error = call(page, "login", {"jwtToken": customer_token(site.project, email=email)})["error"]
    assert error["code"] == "origin_not_allowed" and "allowed_origins" in error["message"]
    assert call(page, "logout")["error"]["code"] == "origin_not_allowed"
    assert users_matching(web_server, site.project, email) == []
    # The chat itself still opens on the site.
    page.get_by_role("button", name="Open chat").click()
    assert chat_frame(page).url.startswith(f"{web_server.url}/p/{site.project.id}/")
    assert page.locator("#chatgate-frame").is_visible()
    assert stored_session(page, site.project) is None


EVIL = """<!doctype html><html><body><script>
window.replies = [];
window.addEventListener("message", function (e) { window.replies.push(JSON.stringify(e.data)); });
var TOKEN = %(token)s;
function attack() {
  for (var i = 0; i < parent.frames.length; i++) {
    var target = parent.frames[i];
    if (target === window) { continue; }
    target.postMessage({chatgate: "hello", id: 1}, "*");
    target.postMessage({chatgate: "call", id: 2, method: "login", args: {jwtToken: TOKEN}}, "*");
    target.postMessage({chatgate: "call", id: 3, method: "logout", args: {}}, "*");
    target.postMessage({chatgate: "call", id: 4, method: "isLoggedIn", args: {email: "x@example.com"}}, "*");
  }
  // Forged answers and events for the host page.
  for (var id = 1; id < 60; id++) {
    parent.postMessage({chatgate: "ready", id: id, allowed: true, project: "forged"}, "*");
    parent.postMessage({chatgate: "reply", id: id, response: {isLoggedIn: true, forged: true}, error: null}, "*");
  }
  parent.postMessage({chatgate: "event", name: "login", data: {email: "forged@example.com"}}, "*");
}
window.attacks = 0;
var timer = setInterval(function () { attack(); if (++window.attacks >= 60) { clearInterval(timer); } }, 50);
</script></body></html>"""


def test_the_chat_and_the_page_ignore_messages_from_other_frames(
    page: Any, web_server: Server, fresh_project: Project, shop: Callable[..., Shop], host_site: Any
) -> None:
    mallory = unique_email("mallory")
    shop_url = host_site("/evil.html", EVIL % {"token": json.dumps(customer_token(fresh_project, email=mallory))})
    evil_url = shop_url.replace("//localhost:", "//127.0.0.1:")  # another origin than the shop's
    alice = unique_email("alice")
    # Even an origin the project trusts is not heeded from a frame that is not the chat's parent.
    site = shop(
        body=f'<iframe id="ads" title="Ads" src="{evil_url}"></iframe>',
        allow=[origin_of(shop_url), origin_of(evil_url)],
    )
    visit(page, site)
    assert call(page, "login", {"jwtToken": customer_token(site.project, email=alice)})["response"]["email"] == alice

    evil = page.frame(url=evil_url)
    evil.wait_for_function("window.attacks >= 10")
    # While forged answers rain on the page, real ones still come from the chat.
    for _ in range(5):
        assert call(page, "isLoggedIn", {"email": mallory})["response"] == {"isLoggedIn": False}
        assert call(page, "isLoggedIn", {"email": alice})["response"] == {"isLoggedIn": True}
    evil.wait_for_function("window.attacks >= 60")
    page.wait_for_timeout(500)
    assert evil.evaluate("window.replies") == []  # the chat answered nothing to the other frame
    assert users_matching(web_server, site.project, mallory) == []  # its login was not run
    assert call(page, "isLoggedIn", {"email": alice})["response"] == {"isLoggedIn": True}  # nor its logout
    assert [e["email"] for e in events(page, "login")] == [alice]  # its forged event went unheard


def test_a_page_that_takes_over_the_chat_frame_cannot_answer_for_it(
    page: Any, web_server: Server, fresh_project: Project, shop: Callable[..., Shop], host_site: Any
) -> None:
    """If the chat's frame is navigated away (a link followed inside it), its new page is not Chatgate."""
    evil_url = host_site(
        "/evil.html", EVIL % {"token": json.dumps(customer_token(fresh_project, email=unique_email("m")))}
    ).replace("//localhost:", "//127.0.0.1:")
    site = shop()
    alice = unique_email("alice")
    visit(page, site)
    assert call(page, "login", {"jwtToken": customer_token(site.project, email=alice)})["error"] is None
    wait_for_event(page, "login")
    call(page, "open")
    chat_frame(page).evaluate("(url) => { location.href = url; }", evil_url)
    evil = page.frame(url=evil_url) or page.wait_for_event("framenavigated", lambda f: f.url == evil_url)
    evil.wait_for_function("window.attacks >= 5")
    result = call(page, "isLoggedIn", {"email": alice})
    assert result["response"] is None and result["error"]["code"] == "origin_not_allowed", result
    assert call(page, "start")["error"]["code"] == "origin_not_allowed"  # no forged "ready" was believed
    assert [e["email"] for e in events(page, "login")] == [alice]


def test_the_session_token_never_reaches_the_host_page(
    page: Any, web_server: Server, shop: Callable[..., Shop]
) -> None:
    site = shop()
    email = unique_email("secret")
    visit(page, site)
    login = call(page, "login", {"jwtToken": customer_token(site.project, email=email)})
    assert call(page, "isLoggedIn", {"email": email})["response"] == {"isLoggedIn": True}
    call(page, "open")
    wait_for_event(page, "login")
    session = stored_session(page, site.project)
    assert session and session["token"].startswith("JWT ")
    secret = session["token"].removeprefix("JWT ")
    host_view = page.evaluate(
        """() => {
            const seen = [];
            for (const name of Object.getOwnPropertyNames(window)) {
                let value;
                try { value = window[name]; } catch (e) { continue; }
                if (typeof value === "string") { seen.push(value); }
                else if (value && typeof value === "object" && !(value instanceof Node) && value !== window) {
                    try { seen.push(JSON.stringify(value)); } catch (e) { /* cyclic or host object */ }
                }
            }
            const storage = (s) => Object.keys(s).map((k) => k + "=" + s.getItem(k));
            return {
                window: seen.join("\\n"),
                cookie: document.cookie,
                localStorage: storage(localStorage).join("\\n"),
                sessionStorage: storage(sessionStorage).join("\\n"),
                html: document.documentElement.outerHTML,
                url: location.href,
                messages: window.seen.join("\\n"),
            };
        }"""
    )
    assert host_view["messages"], "the recorder heard nothing"
    assert email in host_view["messages"]  # the host does hear who signed in…
    for where, text in host_view.items():
        assert secret not in text, where  # …but never the token
    assert secret not in json.dumps(login)


# -- Kustomer compatibility ---------------------------------------------------------------

KUSTOMER_PAGE = """<script>
window.steps = [];
window.addEventListener('kustomerLoaded', function () {
  Kustomer.addListener('onOpen', function () { steps.push('opened'); });
  Kustomer.start({ brandId: 'brand-123', hideChatIcon: false }, function () {
    Kustomer.isLoggedIn({ email: %(email)s }, function (res, error) {
      if (error) { steps.push('error ' + error.code); return; }
      steps.push('before ' + res.isLoggedIn);
      Kustomer.login({ jwtToken: %(token)s }, function (res, error) {
        if (error) { steps.push('login failed ' + error.code); return; }
        steps.push('login ' + res.email);
        Kustomer.isLoggedIn({ email: %(email)s }, function (res) {
          steps.push('after ' + res.isLoggedIn);
          Kustomer.open();
          Kustomer.logout(function (res, error) {
            steps.push(error ? 'logout failed' : 'logged out');
            Kustomer.isLoggedIn({ email: %(email)s }, function (res) { steps.push('end ' + res.isLoggedIn); });
          });
        });
      });
    });
  });
});
// Kustomer's snippet, with only the script's address and attributes changed.
var script = document.createElement('script');
script.src = %(src)s;
script.setAttribute('data-project', %(project)s);
script.setAttribute('data-kustomer-compat', '');
document.body.appendChild(script);
</script>"""


def test_a_page_written_for_kustomer_works_with_the_script_tag_changed(
    page: Any, web_server: Server, fresh_project: Project, host_site: Any
) -> None:
    email = unique_email("kustomer")
    token = customer_token(fresh_project, email=email)
    body = KUSTOMER_PAGE % {
        "email": json.dumps(email),
        "token": json.dumps(token),
        "src": json.dumps(f"{web_server.url}/widget.js"),
        "project": json.dumps(fresh_project.id),
    }
    url = host_site(
        "/kustomer.html", f'<!doctype html><html lang="en"><head><title>K</title></head><body>{body}</body></html>'
    )
    set_origins(web_server, fresh_project, [origin_of(url)])
    page.goto(url)
    page.wait_for_function("window.steps.length >= 6", timeout=20_000)
    assert page.evaluate("window.steps") == [
        "before false",
        f"login {email}",
        "after true",
        "opened",
        "logged out",
        "end false",
    ]
    assert page.evaluate("window.Kustomer.login === window.Chatgate.login")
    assert len(users_matching(web_server, fresh_project, email)) == 1


def test_without_the_compat_attribute_there_is_no_kustomer(page: Any, shop: Callable[..., Shop]) -> None:
    visit(page, shop())
    assert page.evaluate("typeof window.Kustomer") == "undefined"


# -- layout and accessibility ---------------------------------------------------------------


def test_launcher_and_panel_have_no_serious_accessibility_findings(page: Any, shop: Callable[..., Shop]) -> None:
    visit(page, shop())
    assert serious_accessibility_violations(page) == []
    page.get_by_role("button", name="Open chat").click()
    chat_frame(page)
    assert serious_accessibility_violations(page) == []


def test_the_panel_fills_a_small_screen_and_the_launcher_stays_reachable(page: Any, shop: Callable[..., Shop]) -> None:
    page.set_viewport_size({"width": 360, "height": 740})
    visit(page, shop())
    page.get_by_role("button", name="Open chat").click()
    box = page.locator("#chatgate-frame").bounding_box()
    assert box["x"] == 0 and box["width"] == 360 and box["height"] > 500
    launcher = page.locator("#chatgate-bubble").bounding_box()
    assert launcher["y"] >= box["y"] + box["height"]  # below the panel, not under it
    page.get_by_role("button", name="Close chat").click()  # a real click: nothing covers it
    assert not page.locator("#chatgate-frame").is_visible()

    page.set_viewport_size({"width": 1280, "height": 800})
    page.get_by_role("button", name="Open chat").click()
    assert page.locator("#chatgate-frame").bounding_box()["width"] == 370


# -- live messages and a browser that keeps the session -------------------------------


def test_a_guest_who_writes_hears_the_agent_and_keeps_the_chat_on_login(
    page: Any, web_server: Server, shop: Callable[..., Shop]
) -> None:
    """Through the chat page itself: a guest writes, an agent answers live, then the page logs them in."""
    site = shop()
    visit(page, site)
    page.get_by_role("button", name="Open chat").click()
    chat = page.frame_locator("#chatgate-frame")
    chat.get_by_label("Message").fill("Hello, where is my parcel?")
    chat.get_by_label("Message").press("Enter")
    guest = wait_for_event(page, "login")[0]
    assert guest["user"]["anonymous"] is True and guest["email"] is None
    session = stored_session(page, site.project)
    assert session and session["user"]["_id"] == guest["user"]["_id"]
    with httpx.Client(base_url=web_server.url) as api:
        listed = api.get(f"/v1/projects/{site.project.id}/conversations", headers={"Authorization": session["token"]})
        [conversation] = listed.json()["conversations"]
        r = api.post(
            f"/v1/projects/{site.project.id}/conversations/{conversation['id']}/messages",
            json={"text": "Hi, this is support"},
            headers=site.project.owner.auth,
        )
        assert r.status_code == 201, r.text
    [heard] = wait_for_event(page, "message")
    assert heard["conversationId"] == conversation["id"]
    assert heard["message"]["text"] == "Hi, this is support" and heard["message"]["sender"]["type"] == "agent"
    page.wait_for_timeout(300)
    assert len(events(page, "message")) == 1  # the guest's own message is not reported

    email = unique_email("parcel")
    response = call(page, "login", {"jwtToken": customer_token(site.project, email=email)})["response"]
    assert response["merged_conversations"] == 1
    assert wait_for_event(page, "login", 2)[1]["email"] == email
    kept = stored_session(page, site.project)
    assert kept and kept["user"]["email"] == email
    with httpx.Client(base_url=web_server.url) as api:
        mine = api.get(f"/v1/projects/{site.project.id}/conversations", headers={"Authorization": kept["token"]})
        assert [c["id"] for c in mine.json()["conversations"]] == [conversation["id"]]
    assert session_status(web_server, site.project, session["token"]) == 401  # the guest's session ended


def test_where_the_browser_lets_the_frame_keep_storage_the_session_outlives_the_page(
    browser: Any, web_server: Server, shop: Callable[..., Shop], tmp_path: Any
) -> None:
    """The other tests' browser gives the chat frame no storage (the in-memory fallback); this one does.

    Playwright turns storage partitioning off, and this Chromium refuses
    unpartitioned storage to third-party frames. A ``--disable-features``
    list of our own replaces Playwright's, so partitioned storage is back, as
    in the browsers people use.
    """
    site = shop()
    email = unique_email("keeps")
    context = browser.browser_type.launch_persistent_context(
        str(tmp_path / "profile"),
        executable_path=chromium_path(),
        args=["--no-sandbox", "--disable-gpu", "--disable-features=TrackingProtection3pcd"],
    )
    try:
        page = context.new_page()
        visit(page, site)
        assert call(page, "login", {"jwtToken": customer_token(site.project, email=email)})["error"] is None
        frame = chat_frame(page)
        assert frame.evaluate(f"localStorage.getItem('chatgate:{site.project.id}:session') !== null")
        page.reload()
        page.wait_for_function("window.Chatgate && document.getElementById('chatgate-bubble')")
        assert call(page, "isLoggedIn", {"email": email})["response"] == {"isLoggedIn": True}
        session = stored_session(page, site.project)
        assert session and session["user"]["email"] == email and session["token"].startswith("JWT ")
        assert call(page, "logout")["response"] == {"success": True}
        page.reload()
        page.wait_for_function("window.Chatgate && document.getElementById('chatgate-bubble')")
        assert call(page, "isLoggedIn", {"email": email})["response"] == {"isLoggedIn": False}
    finally:
        context.close()
