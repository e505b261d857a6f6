"""Conversations and messages over REST (contract §5), against real servers on SQLite and PostgreSQL.

Most tests use the session ``server``; a setting (a conversation cap, a
message rate) or a kill needs a server of its own.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import RELAXED_RATES, Db, Project, Server, fit_in_one_window, make_project, sign_up_staff, start_server
from jwt_tools import hs256, now
from live_tools import (
    EndUser,
    api_key,
    conversations_path,
    customer,
    fresh_postgres,
    kill_server,
    listing,
    messages,
    say,
    start,
    visitor,
)

CONVERSATION_KEYS = {"id", "title", "userId", "status", "createdAt", "updatedAt"}
MESSAGE_KEYS = {"id", "conversationId", "sender", "text", "clientId", "createdAt"}


def moment(iso: str) -> datetime:
    assert iso.endswith("Z"), iso
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def post(api: httpx.Client, project_id: str, cid: str, headers: dict[str, str], body: Any) -> httpx.Response:
    return api.post(f"{conversations_path(project_id, cid)}/messages", json=body, headers=headers)


def error(r: httpx.Response) -> dict[str, Any]:
    return dict(r.json()["error"])


# -- starting, reading, closing -------------------------------------------------


def test_an_end_user_starts_a_conversation(api: httpx.Client, project: Project, db: Db) -> None:
    user = customer(api, project)
    r = api.post(conversations_path(project.id), json={"title": "  Billing question  "}, headers=user.auth)
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == CONVERSATION_KEYS
    assert body["title"] == "Billing question"
    assert body["userId"] == user.id and body["status"] == "open"
    assert body["createdAt"] == body["updatedAt"]
    assert abs(moment(body["createdAt"]) - datetime.now(UTC)) < timedelta(seconds=30)
    assert db.count(
        "conversations", "id = :c AND user_id = :u AND project_id = :p", c=body["id"], u=user.id, p=project.id
    )

    # No body at all, or an empty one: no title.
    r = api.post(conversations_path(project.id), headers=user.auth)
    assert r.status_code == 201 and r.json()["title"] is None, r.text
    assert start(api, project.id, user.auth, title="   ")["title"] is None

    r = api.post(conversations_path(project.id), json={"title": "x" * 201}, headers=user.auth)
    assert r.status_code == 422 and "title" in error(r)["fields"], r.text
    assert db.count("conversations", "user_id = :u", u=user.id) == 3


def test_staff_and_strangers_do_not_start_conversations(api: httpx.Client, project: Project, db: Db) -> None:
    before = db.count("conversations", "project_id = :p", p=project.id)
    r = api.post(conversations_path(project.id), json={"title": "from staff"}, headers=project.owner.auth)
    assert r.status_code == 403, r.text
    assert api.post(conversations_path(project.id), json={}).status_code == 401
    assert api.post(conversations_path(project.id), json={}, headers={"Authorization": "JWT nope"}).status_code == 401
    # An end user of another project: that project is not theirs.
    other = make_project(api, sign_up_staff(api))
    r = api.post(conversations_path(project.id), json={}, headers=customer(api, other).auth)
    assert r.status_code == 404, r.text
    assert db.count("conversations", "project_id = :p", p=project.id) == before


def test_listing_end_users_see_their_own_and_staff_see_all(api: httpx.Client, project: Project) -> None:
    alice, bob = customer(api, project), customer(api, project)
    mine = [start(api, project.id, alice.auth, title=f"alice {i}") for i in range(3)]
    theirs = start(api, project.id, bob.auth, title="bob")

    r = api.get(conversations_path(project.id), headers=alice.auth)
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"conversations", "next_cursor"}
    assert [c["id"] for c in r.json()["conversations"]] == [c["id"] for c in reversed(mine)]  # newest first
    assert r.json()["next_cursor"] is None
    assert r.json()["conversations"][0] == mine[-1]
    # A user_id filter naming someone else changes nothing for an end user.
    assert [c["id"] for c in listing(api, project.id, alice.auth, user_id=bob.id)] == [c["id"] for c in reversed(mine)]
    assert [c["id"] for c in listing(api, project.id, bob.auth)] == [theirs["id"]]

    everyone = listing(api, project.id, project.owner.auth)
    assert [c["id"] for c in everyone] == [theirs["id"], *(c["id"] for c in reversed(mine))]
    assert [c["id"] for c in listing(api, project.id, project.owner.auth, user_id=bob.id)] == [theirs["id"]]
    assert listing(api, project.id, project.owner.auth, user_id="0" * 24) == []

    # Any member, not only the owner.
    admin = sign_up_staff(api, "admin")
    r = api.post(f"/v1/projects/{project.id}/members", json={"email": admin.email}, headers=project.owner.auth)
    assert r.status_code == 201, r.text
    assert [c["id"] for c in listing(api, project.id, admin.auth)] == [c["id"] for c in everyone]
    # Staff of another project see none of it.
    stranger = sign_up_staff(api, "stranger")
    assert api.get(conversations_path(project.id), headers=stranger.auth).status_code == 404
    assert api.get(conversations_path(project.id)).status_code == 401


def test_staff_filter_by_status_and_page_with_the_cursor(api: httpx.Client, project: Project) -> None:
    users = [customer(api, project) for _ in range(2)]
    made = [start(api, project.id, users[i % 2].auth, title=str(i)) for i in range(5)]
    staff = project.owner.auth
    r = api.patch(conversations_path(project.id, made[1]["id"]), json={"status": "closed"}, headers=staff)
    assert r.status_code == 200, r.text
    closed = listing(api, project.id, staff, status="closed")
    assert [c["id"] for c in closed] == [made[1]["id"]] and closed[0]["status"] == "closed"
    assert [c["id"] for c in listing(api, project.id, staff, status="open")] == [made[i]["id"] for i in (4, 3, 2, 0)]
    assert [c["id"] for c in listing(api, project.id, staff, status="open", user_id=users[1].id)] == [made[3]["id"]]

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        r = api.get(conversations_path(project.id), params=params, headers=staff)
        assert r.status_code == 200, r.text
        page = r.json()
        assert 1 <= len(page["conversations"]) <= 2
        seen += [c["id"] for c in page["conversations"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 5
    assert seen == [c["id"] for c in reversed(made)]
    # An end user pages through their own only.
    r = api.get(conversations_path(project.id), params={"limit": 1}, headers=users[0].auth)
    first = r.json()
    assert [c["id"] for c in first["conversations"]] == [made[4]["id"]] and first["next_cursor"]
    r = api.get(
        conversations_path(project.id), params={"limit": 5, "cursor": first["next_cursor"]}, headers=users[0].auth
    )
    assert [c["id"] for c in r.json()["conversations"]] == [made[2]["id"], made[0]["id"]]

    for bad in ({"limit": 0}, {"limit": 201}, {"limit": "ten"}, {"status": "pending"}):
        r = api.get(conversations_path(project.id), params=bad, headers=staff)
        assert r.status_code == 422, (bad, r.text)
        assert set(error(r)["fields"]) == set(bad), r.text
    assert len(listing(api, project.id, staff, limit=200)) == 5


def test_staff_filter_by_updated_since(api: httpx.Client, project: Project) -> None:
    user = customer(api, project)
    old = start(api, project.id, user.auth, title="old")
    time.sleep(0.05)
    newer = start(api, project.id, user.auth, title="newer")
    staff = project.owner.auth
    cut = moment(newer["updatedAt"])
    assert moment(old["updatedAt"]) < cut

    def since(value: str) -> list[str]:
        return [c["id"] for c in listing(api, project.id, staff, updated_since=value)]

    assert since(cut.isoformat().replace("+00:00", "Z")) == [newer["id"]]
    assert since((cut - timedelta(days=1)).isoformat()) == [newer["id"], old["id"]]
    assert since((cut + timedelta(seconds=5)).isoformat()) == []
    # Another offset names the same moment.
    assert since(cut.astimezone(timezone(timedelta(hours=-5))).isoformat()) == [newer["id"]]
    # A message moves the old one into the window.
    say(api, project.id, old["id"], user.auth, "bump")
    assert since(cut.isoformat()) == [newer["id"], old["id"]]
    assert since((cut + timedelta(milliseconds=1)).isoformat()) == [old["id"]]

    for bad in ("yesterday", "2026-13-01T00:00:00Z", "2026-11-29T08:00:00+25:00", "12"):
        r = api.get(conversations_path(project.id), params={"updated_since": bad}, headers=staff)
        assert r.status_code == 422, (bad, r.text)
        assert "updated_since" in error(r)["fields"], r.text


def test_updated_since_at_the_edge_of_time_is_refused_not_a_server_error(api: httpx.Client, project: Project) -> None:
    # Valid ISO 8601 whose UTC equivalent falls outside the representable years.
    for edge in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"):
        r = api.get(conversations_path(project.id), params={"updated_since": edge}, headers=project.owner.auth)
        assert r.status_code in (200, 422), (edge, r.status_code, r.text)
        if r.status_code == 422:
            assert "updated_since" in error(r)["fields"]


def test_a_user_id_filter_with_unstorable_text_is_not_a_server_error(api: httpx.Client, project: Project) -> None:
    for raw in ("%00", "a%00b", "%ff%fe", "%ED%A0%80"):
        r = api.get(conversations_path(project.id) + "?user_id=" + raw, headers=project.owner.auth)
        assert r.status_code in (200, 400, 422), (raw, r.status_code, r.text)
        if r.status_code == 200:
            assert r.json()["conversations"] == []


def test_one_conversation_and_the_404s_that_hide_others(api: httpx.Client, project: Project) -> None:
    alice, bob = customer(api, project), customer(api, project)
    hers = start(api, project.id, alice.auth, title="hers")
    r = api.get(conversations_path(project.id, hers["id"]), headers=alice.auth)
    assert r.status_code == 200 and r.json() == hers, r.text
    assert api.get(conversations_path(project.id, hers["id"]), headers=project.owner.auth).json() == hers

    not_found = []
    for who, pid, cid in (
        (bob, project.id, hers["id"]),  # another user's: 404, never 403
        (alice, project.id, "0" * 24),  # unknown
        (alice, project.id, "not-an-id"),
    ):
        r = api.get(conversations_path(pid, cid), headers=who.auth)
        assert r.status_code == 404, (cid, r.text)
        assert error(r)["code"] == "conversation_not_found", r.text
        not_found.append(r.json())
    # Bob cannot tell Alice's conversation from one that does not exist.
    assert not_found[0] == not_found[1]
    # Nor read, answer or see its messages.
    assert api.get(f"{conversations_path(project.id, hers['id'])}/messages", headers=bob.auth).status_code == 404
    r = post(api, project.id, hers["id"], bob.auth, {"text": "let me in"})
    assert r.status_code == 404 and error(r)["code"] == "conversation_not_found", r.text

    # Project B's path with project A's session or conversation: 404.
    other = make_project(api, sign_up_staff(api))
    for path in (
        conversations_path(other.id, hers["id"]),
        conversations_path(other.id),
        f"{conversations_path(other.id, hers['id'])}/messages",
    ):
        assert api.get(path, headers=alice.auth).status_code == 404, path
    r = api.get(conversations_path(other.id, hers["id"]), headers=other.owner.auth)
    assert r.status_code == 404, r.text  # B's staff, with A's conversation id under B's path
    assert api.get(conversations_path(project.id, hers["id"]), headers=other.owner.auth).status_code == 404
    assert messages(api, project.id, hers["id"], alice.auth)["messages"] == []


def test_staff_close_and_reopen_and_the_user_reopens_by_writing(api: httpx.Client, project: Project) -> None:
    user = customer(api, project)
    conv = start(api, project.id, user.auth)
    path = conversations_path(project.id, conv["id"])

    r = api.patch(path, json={"status": "closed"}, headers=user.auth)
    assert r.status_code == 403, r.text
    assert api.get(path, headers=user.auth).json()["status"] == "open"

    time.sleep(0.01)
    r = api.patch(path, json={"status": "closed"}, headers=project.owner.auth)
    assert r.status_code == 200, r.text
    closed = r.json()
    assert set(closed) == CONVERSATION_KEYS
    assert closed["status"] == "closed" and closed["id"] == conv["id"]
    assert moment(closed["updatedAt"]) > moment(conv["updatedAt"])
    assert closed["createdAt"] == conv["createdAt"]
    assert api.get(path, headers=user.auth).json() == closed

    for bad in ({"status": "archived"}, {}, {"status": None}):
        r = api.patch(path, json=bad, headers=project.owner.auth)
        assert r.status_code == 422, (bad, r.text)
    stranger = sign_up_staff(api, "stranger")
    assert api.patch(path, json={"status": "open"}, headers=stranger.auth).status_code == 404
    assert api.patch(path, json={"status": "open"}).status_code == 401
    assert api.get(path, headers=user.auth).json()["status"] == "closed"

    # A staff answer leaves it closed; the user writing again reopens it.
    say(api, project.id, conv["id"], project.owner.auth, "closing note")
    assert api.get(path, headers=user.auth).json()["status"] == "closed"
    say(api, project.id, conv["id"], user.auth, "wait, one more thing")
    assert api.get(path, headers=user.auth).json()["status"] == "open"
    assert [c["id"] for c in listing(api, project.id, project.owner.auth, status="open")] == [conv["id"]]

    # Staff reopen and close again.
    assert api.patch(path, json={"status": "closed"}, headers=project.owner.auth).json()["status"] == "closed"
    assert api.patch(path, json={"status": "open"}, headers=project.owner.auth).json()["status"] == "open"


# -- messages ---------------------------------------------------------------------


def test_messages_from_user_and_agent(api: httpx.Client, project: Project, db: Db) -> None:
    user = customer(api, project)
    conv = start(api, project.id, user.auth)
    r = post(api, project.id, conv["id"], user.auth, {"text": "  Hello there \n"})
    assert r.status_code == 201, r.text
    mine = r.json()
    assert set(mine) == MESSAGE_KEYS
    assert mine["conversationId"] == conv["id"]
    assert mine["sender"] == {"type": "user", "id": user.id}
    assert mine["text"] == "Hello there"
    assert mine["clientId"] is None
    assert "idempotent-replayed" not in r.headers
    assert abs(moment(mine["createdAt"]) - datetime.now(UTC)) < timedelta(seconds=30)

    r = post(api, project.id, conv["id"], project.owner.auth, {"text": "Hi! How can I help?", "client_id": "s-1"})
    assert r.status_code == 201, r.text
    answer = r.json()
    assert answer["sender"] == {"type": "agent", "id": project.owner.id}
    assert answer["clientId"] == "s-1"

    assert messages(api, project.id, conv["id"], user.auth) == {"messages": [mine, answer], "has_more": False}
    assert messages(api, project.id, conv["id"], project.owner.auth)["messages"] == [mine, answer]
    assert db.count("messages", "conversation_id = :c", c=conv["id"]) == 2
    stored = db.rows("SELECT text, sender_type FROM messages WHERE id = :m", m=mine["id"])
    assert [tuple(row) for row in stored] == [("Hello there", "user")]
    # A message moves the conversation's updatedAt.
    assert moment(api.get(conversations_path(project.id, conv["id"]), headers=user.auth).json()["updatedAt"]) >= (
        moment(answer["createdAt"])
    )


def test_message_text_is_1_to_10000_characters_once_trimmed(api: httpx.Client, project: Project, db: Db) -> None:
    user = customer(api, project)
    conv = start(api, project.id, user.auth)
    for body in (
        {"text": ""},
        {"text": "   \n\t "},
        {"text": "x" * 10_001},
        {"text": " " + "y" * 10_001 + " "},
        {"text": "z" * 40_001},
        {"text": 42},
        {"text": None},
        {},
        {"text": "ok", "client_id": ""},
        {"text": "ok", "client_id": "c" * 65},
    ):
        r = post(api, project.id, conv["id"], user.auth, body)
        assert r.status_code == 422, (str(body)[:80], r.text[:300])
        field = "client_id" if "client_id" in body else "text"
        assert field in error(r)["fields"], r.text[:300]
    assert db.count("messages", "conversation_id = :c", c=conv["id"]) == 0

    longest = "é" * 10_000
    r = post(api, project.id, conv["id"], user.auth, {"text": f"  {longest}\n "})
    assert r.status_code == 201, r.text[:300]
    assert r.json()["text"] == longest
    assert messages(api, project.id, conv["id"], user.auth)["messages"][0]["text"] == longest
    assert say(api, project.id, conv["id"], user.auth, "😀" * 10_000)["text"] == "😀" * 10_000
    assert say(api, project.id, conv["id"], user.auth, "a")["text"] == "a"


def test_backend_api_keys_post_as_bot_or_system(api: httpx.Client, project: Project, db: Db) -> None:
    user = customer(api, project)
    conv = start(api, project.id, user.auth)
    key = api_key(api, project, ["org.user"])
    bearer = {"Authorization": f"Bearer {key}"}
    listed = api.get(f"/v1/projects/{project.id}/apikeys", headers=project.owner.auth).json()["apikeys"]
    key_id = listed[0]["id"]

    r = post(api, project.id, conv["id"], bearer, {"text": "Automated hello"})
    assert r.status_code == 201, r.text
    assert r.json()["sender"] == {"type": "bot", "id": key_id}
    r = post(api, project.id, conv["id"], bearer, {"text": "Ticket #4 opened", "sender_type": "system"})
    assert r.status_code == 201, r.text
    assert r.json()["sender"]["type"] == "system"
    r = post(api, project.id, conv["id"], bearer, {"text": "explicit bot", "sender_type": "bot"})
    assert r.status_code == 201 and r.json()["sender"]["type"] == "bot", r.text
    assert [m["sender"]["type"] for m in messages(api, project.id, conv["id"], user.auth)["messages"]] == [
        "bot",
        "system",
        "bot",
    ]

    count = db.count("messages", "conversation_id = :c", c=conv["id"])
    for sender_type in ("user", "agent", "robot"):
        r = post(api, project.id, conv["id"], bearer, {"text": "pretend", "sender_type": sender_type})
        assert r.status_code == 422, (sender_type, r.text)
        assert "sender_type" in error(r)["fields"]
    # Sessions never choose their sender.
    for session in (user.auth, project.owner.auth):
        r = post(api, project.id, conv["id"], session, {"text": "I am the bot", "sender_type": "bot"})
        assert r.status_code == 422, r.text
        assert "sender_type" in error(r)["fields"], r.text
    assert db.count("messages", "conversation_id = :c", c=conv["id"]) == count


def test_an_api_key_without_org_user_cannot_post(api: httpx.Client, project: Project, db: Db) -> None:
    user = customer(api, project)
    conv = start(api, project.id, user.auth)
    admin_only = api_key(api, project, ["org.admin"])
    r = post(api, project.id, conv["id"], {"Authorization": f"Bearer {admin_only}"}, {"text": "hello"})
    assert r.status_code == 403, r.text
    assert db.count("messages", "conversation_id = :c", c=conv["id"]) == 0


def test_revoked_unknown_and_foreign_api_keys_cannot_post(api: httpx.Client, project: Project, db: Db) -> None:
    user = customer(api, project)
    conv = start(api, project.id, user.auth)
    key = api_key(api, project, ["org.user"])
    key_id = api.get(f"/v1/projects/{project.id}/apikeys", headers=project.owner.auth).json()["apikeys"][0]["id"]
    assert api.delete(f"/v1/projects/{project.id}/apikeys/{key_id}", headers=project.owner.auth).status_code == 200
    r = post(api, project.id, conv["id"], {"Authorization": f"Bearer {key}"}, {"text": "after revocation"})
    assert r.status_code == 401, r.text
    r = post(api, project.id, conv["id"], {"Authorization": "Bearer cgk_000000000000_nope"}, {"text": "forged"})
    assert r.status_code == 401, r.text
    # Another project's key, aimed at this project's conversation.
    other = make_project(api, sign_up_staff(api))
    foreign = api_key(api, other, ["org.user"])
    r = post(api, project.id, conv["id"], {"Authorization": f"Bearer {foreign}"}, {"text": "cross-project"})
    assert r.status_code in (403, 404), r.text
    # Its own project's path with this conversation's id: not found there.
    r = post(api, other.id, conv["id"], {"Authorization": f"Bearer {foreign}"}, {"text": "cross-project"})
    assert r.status_code == 404, r.text
    assert db.count("messages", "conversation_id = :c", c=conv["id"]) == 0


def test_the_same_client_id_answers_the_first_message(api: httpx.Client, project: Project, db: Db) -> None:
    user = customer(api, project)
    conv, other_conv = start(api, project.id, user.auth), start(api, project.id, user.auth)
    r = post(api, project.id, conv["id"], user.auth, {"text": "first", "client_id": "phone-42"})
    assert r.status_code == 201 and "idempotent-replayed" not in r.headers, r.text
    first = r.json()
    for text_ in ("first", "a different text, same client id"):
        again = post(api, project.id, conv["id"], user.auth, {"text": text_, "client_id": "phone-42"})
        assert again.status_code == 201, again.text
        assert again.headers.get("idempotent-replayed") == "true"
        assert again.json() == first
    # Another conversation, or no client id: new messages.
    elsewhere = say(api, project.id, other_conv["id"], user.auth, "first", client_id="phone-42")
    assert elsewhere["id"] != first["id"]
    assert db.count("messages", "conversation_id = :c", c=conv["id"]) == 1
    assert [m["id"] for m in messages(api, project.id, conv["id"], user.auth)["messages"]] == [first["id"]]


def test_the_same_client_id_sent_20_times_at_once_stores_one_message(
    server: Server, project: Project, db: Db, api: httpx.Client
) -> None:
    user = customer(api, project)
    conv = start(api, project.id, user.auth)
    barrier = threading.Barrier(20)

    def send(i: int) -> httpx.Response:
        with httpx.Client(base_url=server.url, timeout=30) as own:  # a connection of its own
            own.get("/healthz")
            barrier.wait()
            return post(own, project.id, conv["id"], user.auth, {"text": f"attempt {i}", "client_id": "dup-1"})

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(send, range(20)))
    assert [r.status_code for r in answers] == [201] * 20, [r.text for r in answers if r.status_code != 201]
    bodies = [r.json() for r in answers]
    assert len({b["id"] for b in bodies}) == 1
    assert len({b["createdAt"] for b in bodies}) == 1
    assert len({b["text"] for b in bodies}) == 1
    assert sum(1 for r in answers if r.headers.get("idempotent-replayed") != "true") == 1
    assert db.count("messages", "conversation_id = :c", c=conv["id"]) == 1
    assert db.count("messages", "conversation_id = :c AND client_id = 'dup-1'", c=conv["id"]) == 1


def test_message_pages_after_and_before(api: httpx.Client, project: Project) -> None:
    user = customer(api, project)
    conv = start(api, project.id, user.auth)
    sent = [say(api, project.id, conv["id"], user.auth if i % 2 else project.owner.auth, f"m{i}") for i in range(7)]
    ids = [m["id"] for m in sent]

    def page(**query: Any) -> tuple[list[str], bool]:
        body = messages(api, project.id, conv["id"], user.auth, **query)
        assert set(body) == {"messages", "has_more"}
        return [m["id"] for m in body["messages"]], body["has_more"]

    assert page() == (ids, False)
    assert page(limit=3) == (ids[:3], True)
    assert page(after=ids[2], limit=3) == (ids[3:6], True)
    assert page(after=ids[5], limit=3) == (ids[6:], False)
    assert page(after=ids[6]) == ([], False)
    assert page(before=ids[6], limit=3) == (ids[3:6], True)
    assert page(before=ids[3], limit=3) == (ids[:3], False)
    assert page(before=ids[2], limit=3) == (ids[:2], False)
    assert page(before=ids[0]) == ([], False)
    assert page(limit=7) == (ids, False)
    assert page(limit=200) == (ids, False)
    assert page(after=ids[1], before=ids[5]) == (ids[2:5], False)
    # Scrolling back from the newest, a page at a time, walks the whole conversation once.
    seen: list[str] = []
    newest, more = page(before="f" * 24, limit=3)
    assert (newest, more) == (ids[4:], True)
    seen = newest
    while more:
        older, more = page(before=seen[0], limit=3)
        seen = older + seen
    assert seen == ids
    for bad in ({"limit": 0}, {"limit": 201}, {"limit": "-1"}):
        r = api.get(f"{conversations_path(project.id, conv['id'])}/messages", params=bad, headers=user.auth)
        assert r.status_code == 422, (bad, r.text)


# -- servers of their own: caps, rates, kills ----------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def capped(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """At most 3 conversations per user, 3 messages per sender per minute."""
    env = {
        "CHATGATE_MAX_CONVERSATIONS_PER_USER": "3",
        "CHATGATE_RATE_LIMITS": RELAXED_RATES + ",message_sender=3/60",
        "CHATGATE_DB_POOL_SIZE": "10",
    }
    with fresh_postgres() if request.param == "postgresql" else contextlib.nullcontext() as database_url:
        srv = start_server(tmp_path_factory.mktemp(f"capped-{request.param}"), database_url, extra_env=env)
        try:
            yield srv
        finally:
            srv.stop()


@pytest.fixture
def capped_api(capped: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=capped.url, timeout=30) as client:
        yield client


def test_a_user_over_the_conversation_cap_is_refused(capped: Server, capped_api: httpx.Client) -> None:
    api, db = capped_api, Db(capped.engine)
    project = make_project(api, sign_up_staff(api))
    user, other = customer(api, project), customer(api, project)
    for _ in range(3):
        start(api, project.id, user.auth)
    r = api.post(conversations_path(project.id), json={"title": "one too many"}, headers=user.auth)
    assert r.status_code == 403, r.text
    assert error(r)["code"] == "conversation_limit_reached"
    assert db.count("conversations", "user_id = :u", u=user.id) == 3
    assert len(listing(api, project.id, user.auth)) == 3
    start(api, project.id, other.auth)  # a cap per user, not per project


def test_a_merge_keeps_every_chat_even_past_the_cap(capped: Server, capped_api: httpx.Client) -> None:
    api, db = capped_api, Db(capped.engine)
    project = make_project(api, sign_up_staff(api))
    user = customer(api, project, "merged-past-cap")
    for _ in range(3):
        start(api, project.id, user.auth)
    guest = visitor(api, project.id)
    start(api, project.id, guest.auth, "asked before signing in")
    claims = {"externalId": "merged-past-cap", "iat": now()}
    r = api.post(
        f"/v1/projects/{project.id}/auth/customer/login",
        json={"jwtToken": hs256(project.secret, claims), "anonymous_token": guest.bare},
    )
    assert r.status_code == 200, r.text
    assert r.json()["merged_conversations"] == 1
    assert db.count("conversations", "user_id = :u", u=user.id) == 4
    assert "asked before signing in" in [c["title"] for c in listing(api, project.id, user.auth)]
    # Over the cap: no new conversation until under it.
    r = api.post(conversations_path(project.id), json={}, headers=user.auth)
    assert r.status_code == 403 and error(r)["code"] == "conversation_limit_reached"


def test_the_conversation_cap_holds_under_concurrent_starts(capped: Server, capped_api: httpx.Client) -> None:
    api, db = capped_api, Db(capped.engine)
    project = make_project(api, sign_up_staff(api))
    user = customer(api, project)
    barrier = threading.Barrier(12)

    def attempt(_: int) -> httpx.Response:
        with httpx.Client(base_url=capped.url, timeout=30) as own:
            own.get("/healthz")
            barrier.wait()
            return own.post(conversations_path(project.id), json={}, headers=user.auth)

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(attempt, range(12)))
    statuses = sorted(r.status_code for r in answers)
    created = db.count("conversations", "user_id = :u", u=user.id)
    assert statuses == [201] * 3 + [403] * 9 and created == 3, f"answers {statuses}, {created} conversations stored"
    assert all(error(r)["code"] == "conversation_limit_reached" for r in answers if r.status_code == 403)


def test_messages_past_the_sender_rate_are_429_with_retry_after(capped: Server, capped_api: httpx.Client) -> None:
    api, db = capped_api, Db(capped.engine)
    project = make_project(api, sign_up_staff(api))
    user = customer(api, project, "rated")
    conv = start(api, project.id, user.auth)
    fit_in_one_window(60)
    for i in range(3):
        say(api, project.id, conv["id"], user.auth, f"m{i}")
    r = post(api, project.id, conv["id"], user.auth, {"text": "one too many"})
    assert r.status_code == 429, r.text
    assert error(r)["code"] == "rate_limited"
    retry_after = r.headers.get("retry-after")
    assert retry_after is not None and retry_after.isdigit() and 1 <= int(retry_after) <= 60, r.headers
    assert db.count("messages", "conversation_id = :c", c=conv["id"]) == 3
    # Per sender: the agent and the backend still answer in the same conversation.
    say(api, project.id, conv["id"], project.owner.auth, "agent here")
    say(api, project.id, conv["id"], {"Authorization": f"Bearer {api_key(api, project, ['org.user'])}"}, "bot here")
    # Another device (session) of the same user is the same sender.
    second_device = customer(api, project, "rated")
    assert second_device.id == user.id and second_device.token != user.token
    assert post(api, project.id, conv["id"], second_device.auth, {"text": "still too many"}).status_code == 429
    assert db.count("messages", "conversation_id = :c", c=conv["id"]) == 5


def test_a_replayed_client_id_is_answered_even_past_the_rate(capped: Server, capped_api: httpx.Client) -> None:
    """The same client_id answers the first message however many times: a retry is not a new message."""
    api, db = capped_api, Db(capped.engine)
    project = make_project(api, sign_up_staff(api))
    user = customer(api, project)
    conv = start(api, project.id, user.auth)
    fit_in_one_window(60)
    first = say(api, project.id, conv["id"], user.auth, "kept", client_id="retry-me")
    say(api, project.id, conv["id"], user.auth, "two")
    say(api, project.id, conv["id"], user.auth, "three")
    r = post(api, project.id, conv["id"], user.auth, {"text": "kept", "client_id": "retry-me"})
    assert r.status_code == 201, f"a retry of a stored message answered {r.status_code}: {r.text}"
    assert r.json() == first and r.headers.get("idempotent-replayed") == "true"
    assert db.count("messages", "conversation_id = :c", c=conv["id"]) == 3


def test_posts_answered_404_count_against_the_sender_rate(capped: Server, capped_api: httpx.Client) -> None:
    api, db = capped_api, Db(capped.engine)
    project = make_project(api, sign_up_staff(api))
    user, other = customer(api, project), customer(api, project)
    own, foreign = start(api, project.id, user.auth), start(api, project.id, other.auth)
    fit_in_one_window(60)
    for conversation_id in (secrets.token_hex(12), foreign["id"], secrets.token_hex(12)):
        r = post(api, project.id, conversation_id, user.auth, {"text": "probing"})
        assert (r.status_code, error(r)["code"]) == (404, "conversation_not_found"), r.text
    r = post(api, project.id, own["id"], user.auth, {"text": "the fourth attempt"})
    assert (r.status_code, error(r)["code"]) == (429, "rate_limited"), r.text
    assert db.count("messages", "sender_id = :u", u=user.id) == 0


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_201_message_survives_sigkill_of_the_whole_server(backend: str, tmp_path: Path) -> None:
    """201 means committed: every message answered 201 before a SIGKILL is there after the restart."""
    data_dir = tmp_path / "data"
    env = {"CHATGATE_DATA_DIR": str(data_dir), "CHATGATE_SERVER_KEY": secrets.token_hex(32)}
    with fresh_postgres() if backend == "postgresql" else contextlib.nullcontext() as pg_url:
        database_url = pg_url or f"sqlite:///{data_dir / 'chatgate.db'}"
        srv = start_server(tmp_path, database_url, extra_env=env)
        try:
            with httpx.Client(base_url=srv.url, timeout=10) as api:
                project = make_project(api, sign_up_staff(api))
                users = [customer(api, project) for _ in range(4)]
                convs = [start(api, project.id, u.auth) for u in users]
            answered: list[tuple[EndUser, dict[str, Any]]] = []
            lock = threading.Lock()
            stop = threading.Event()

            def writer(i: int) -> None:
                with httpx.Client(base_url=srv.url, timeout=10) as own:
                    n = 0
                    while not stop.is_set():
                        try:
                            r = post(own, project.id, convs[i]["id"], users[i].auth, {"text": f"w{i} n{n}"})
                        except httpx.HTTPError:
                            return
                        if r.status_code == 201:
                            with lock:
                                answered.append((users[i], r.json()))
                        n += 1

            with ThreadPoolExecutor(4) as pool:
                for i in range(4):
                    pool.submit(writer, i)
                while True:  # a handful of 201s, then pull the plug in the middle of the stream
                    with lock:
                        if len(answered) >= 12:
                            break
                    time.sleep(0.001)
                kill_server(srv)
                stop.set()
        finally:
            if srv.process.poll() is None:
                srv.stop()
        with lock:
            survivors = list(answered)
        assert len(survivors) >= 12

        again = start_server(tmp_path, database_url, extra_env=env)
        try:
            with httpx.Client(base_url=again.url, timeout=10) as api:
                for i, user in enumerate(users):
                    stored = {
                        m["id"]: m for m in messages(api, project.id, convs[i]["id"], user.auth, limit=200)["messages"]
                    }
                    for owner_, message in survivors:
                        if owner_ is user:
                            assert stored.get(message["id"]) == message, f"answered 201 but lost: {message}"
        finally:
            again.stop()
