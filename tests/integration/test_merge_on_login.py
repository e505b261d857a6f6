"""A visitor's conversations follow them into the account they sign in to (``anonymous_token``).

Each way of signing in (custom token, external code, customer login, email
sign-up and sign-in) takes the visitor's session token; the answer counts the
conversations moved, the visitor's sessions end (sockets closed 4001), and the
user's devices and the project's staff are told with ``conversation.merged``.
Never across projects, never from an identified user, never twice.

The async scenarios call the API with blocking clients on purpose: one step at
a time, while the frames the server sends wait in the sockets.
"""

# ruff: noqa: ASYNC212

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from conftest import PASSWORD, Project, Server, make_project, sign_up_staff
from jwt_tools import hs256, now
from live_tools import (
    WITHIN,
    EndUser,
    conversations_path,
    customer,
    listing,
    messages,
    open_live,
    refusal,
    run,
    say,
    start,
    visitor,
    ws_url,
)

KINDS = ["custom_token", "external_code", "customer_login", "email_signin", "email_signup"]


def login(
    api: httpx.Client, server: Server, project: Project, kind: str, identity: str, anonymous_token: str | None = None
) -> httpx.Response:
    """Sign ``identity`` in by ``kind``, handing over ``anonymous_token`` when given."""
    extra = {} if anonymous_token is None else {"anonymous_token": anonymous_token}
    base = f"/v1/projects/{project.id}/auth"
    if kind == "custom_token":
        claims = {"_id": identity, "sub": "userexternal", "aud": f"{server.url}/projects/{project.id}"}
        token = hs256(project.secret, claims)
        return api.post("/v1/auth/signinWithCustomToken", headers={"Authorization": f"JWT {token}"}, json=extra or None)
    if kind == "external_code":
        code = hs256(project.secret, {"user": {"id": identity}})
        return api.post(f"{base}/external-code", json={"externalAuthCode": code, **extra})
    if kind == "customer_login":
        token = hs256(project.secret, {"externalId": identity, "iat": now()})
        return api.post(f"{base}/customer/login", json={"jwtToken": token, **extra})
    email = f"{identity}@example.com"
    if kind == "email_signup":
        return api.post(f"{base}/email/signup", json={"email": email, "password": PASSWORD, **extra})
    assert kind == "email_signin"
    return api.post(f"{base}/email/signin", json={"email": email, "password": PASSWORD, **extra})


def signed_in(r: httpx.Response) -> EndUser:
    assert r.status_code == 200, r.text
    return EndUser(r.json()["user"]["_id"], r.json()["token"])


def visitor_with_conversations(api: httpx.Client, project: Project) -> tuple[EndUser, list[dict[str, Any]]]:
    """A visitor with two conversations, each with a message of theirs and an agent's answer."""
    guest = visitor(api, project.id)
    convs = [start(api, project.id, guest.auth, title=f"visit {i}") for i in range(2)]
    for conv in convs:
        say(api, project.id, conv["id"], guest.auth, f"question in {conv['title']}")
        say(api, project.id, conv["id"], project.owner.auth, f"answer in {conv['title']}")
    return guest, convs


@pytest.mark.parametrize("kind", KINDS)
def test_a_login_with_the_visitors_token_takes_their_conversations(
    kind: str, server: Server, api: httpx.Client, project: Project
) -> None:
    identity = f"merge-{kind.replace('_', '-')}-{now()}"
    existing: EndUser | None = None
    if kind == "email_signup":
        pass  # the sign-up itself creates the user
    else:
        if kind == "email_signin":
            signed_in(login(api, server, project, "email_signup", identity))
        existing = signed_in(login(api, server, project, kind, identity))
        assert login(api, server, project, kind, identity).json()["merged_conversations"] == 0
    guest, convs = visitor_with_conversations(api, project)

    async def scenario() -> EndUser:
        guest_socket = await open_live(server.url, project.id, guest.token, name="visitor")
        staff = await open_live(server.url, project.id, project.owner.token, name="owner")
        device = None
        if existing is not None:
            device = await open_live(server.url, project.id, existing.token, name="user's other device")

        r = login(api, server, project, kind, identity, anonymous_token=guest.bare)
        assert r.status_code == 200, r.text
        assert r.json()["merged_conversations"] == 2, r.json()
        user = signed_in(r)
        if existing is not None:
            assert user.id == existing.id

        # The visitor is gone: its socket closes, its token is refused everywhere.
        code, frames = await guest_socket.closed(WITHIN)
        assert code == 4001 and [f["type"] for f in frames] == ["session.revoked"], (code, frames)
        assert api.get(f"/v1/projects/{project.id}/auth/me", headers=guest.auth).status_code == 401
        assert api.get(conversations_path(project.id), headers=guest.auth).status_code == 401
        assert await refusal(ws_url(server.url, project.id, guest.bare)) == 4401

        # Every device of the user, and the staff, are told of each conversation.
        for live in (staff, device) if device is not None else (staff,):
            merged = [await live.expect("conversation.merged") for _ in convs]
            assert sorted(f["conversationId"] for f in merged) == sorted(c["id"] for c in convs), live.name
            for frame in merged:
                assert frame["conversation"]["userId"] == user.id, frame
                assert frame["conversation"]["id"] == frame["conversationId"]
            await live.silent()  # the visitor's session.revoked is not theirs
            await live.close()
        return user

    user: EndUser = run(scenario())

    # The conversations are the user's now, with everything that was said in them.
    mine = listing(api, project.id, user.auth)
    assert sorted(c["id"] for c in mine) == sorted(c["id"] for c in convs)
    assert all(c["userId"] == user.id for c in mine)
    for conv in convs:
        said = messages(api, project.id, conv["id"], user.auth)["messages"]
        assert [m["text"] for m in said] == [f"question in {conv['title']}", f"answer in {conv['title']}"]
        assert api.get(conversations_path(project.id, conv["id"]), headers=user.auth).json()["userId"] == user.id
    assert listing(api, project.id, project.owner.auth, user_id=guest.id) == []
    assert len(listing(api, project.id, project.owner.auth, user_id=user.id)) == 2
    say(api, project.id, convs[0]["id"], user.auth, "signed in now")


def test_never_across_projects(server: Server, api: httpx.Client, project: Project) -> None:
    guest, convs = visitor_with_conversations(api, project)
    other = make_project(api, sign_up_staff(api, "other"))

    async def scenario() -> None:
        guest_socket = await open_live(server.url, project.id, guest.token, name="visitor of A")
        r = login(api, server, other, "customer_login", "someone-in-b", anonymous_token=guest.bare)
        assert r.status_code == 200, r.text
        assert r.json()["merged_conversations"] == 0
        in_b = signed_in(r)
        await guest_socket.silent()
        await guest_socket.ping()
        await guest_socket.close()
        assert listing(api, other.id, in_b.auth) == []
        assert listing(api, other.id, other.owner.auth) == []

    run(scenario())
    assert api.get(f"/v1/projects/{project.id}/auth/me", headers=guest.auth).status_code == 200
    assert sorted(c["id"] for c in listing(api, project.id, guest.auth)) == sorted(c["id"] for c in convs)


def test_never_from_an_identified_user_or_a_staff_member(server: Server, api: httpx.Client, project: Project) -> None:
    known = customer(api, project, "known")
    convs = [start(api, project.id, known.auth) for _ in range(2)]

    async def scenario() -> None:
        live = await open_live(server.url, project.id, known.token, name="identified user")
        for token in (known.bare, project.owner.token.removeprefix("JWT ")):
            r = login(api, server, project, "customer_login", "taker", anonymous_token=token)
            assert r.status_code == 200, r.text
            assert r.json()["merged_conversations"] == 0
        await live.silent()
        await live.ping()
        await live.close()

    run(scenario())
    taker = signed_in(login(api, server, project, "customer_login", "taker"))
    assert listing(api, project.id, taker.auth) == []
    assert sorted(c["id"] for c in listing(api, project.id, known.auth)) == sorted(c["id"] for c in convs)
    assert api.get(conversations_path(project.id), headers=project.owner.auth).status_code == 200


def test_never_twice(server: Server, api: httpx.Client, project: Project) -> None:
    guest, convs = visitor_with_conversations(api, project)
    first = login(api, server, project, "external_code", "first", anonymous_token=guest.bare)
    assert first.status_code == 200 and first.json()["merged_conversations"] == 2, first.text
    owner_of_convs = signed_in(first)
    for identity in ("second", "first"):
        again = login(api, server, project, "external_code", identity, anonymous_token=guest.bare)
        assert again.status_code == 200, again.text
        assert again.json()["merged_conversations"] == 0
    second = signed_in(login(api, server, project, "external_code", "second"))
    assert listing(api, project.id, second.auth) == []
    assert sorted(c["id"] for c in listing(api, project.id, owner_of_convs.auth)) == sorted(c["id"] for c in convs)


def test_two_logins_racing_with_one_visitor_token_move_each_conversation_once(
    server: Server, api: httpx.Client, project: Project
) -> None:
    guest, convs = visitor_with_conversations(api, project)
    barrier = threading.Barrier(2)

    def race(identity: str) -> httpx.Response:
        with httpx.Client(base_url=server.url, timeout=30) as own:
            own.get("/healthz")
            barrier.wait()
            return login(own, server, project, "customer_login", identity, anonymous_token=guest.bare)

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(race, ["racer-1", "racer-2"]))
    assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
    counts = sorted(r.json()["merged_conversations"] for r in answers)
    assert counts == [0, 2], counts
    winner = signed_in(answers[0] if answers[0].json()["merged_conversations"] == 2 else answers[1])
    loser = signed_in(answers[1] if winner.token == answers[0].json()["token"] else answers[0])
    assert sorted(c["id"] for c in listing(api, project.id, winner.auth)) == sorted(c["id"] for c in convs)
    assert listing(api, project.id, loser.auth) == []
