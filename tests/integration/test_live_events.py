"""Live events over WebSockets: who receives what, close codes, replay, and delivery across processes.

Every socket is a real WebSocket to a real server (two worker processes, on
SQLite and on PostgreSQL); every wait is bounded. Each test makes its own
project, so a staff socket sees only what the test does.

The async scenarios call the API with blocking clients on purpose: one step at
a time, while the frames the server sends wait in the sockets.
"""

# ruff: noqa: ASYNC212

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from conftest import PASSWORD, Db, Project, Server, Staff, make_project, sign_up_staff, start_server, unique_email
from doors import Door, worker_doors
from jwt_tools import hs256
from live_tools import (
    QUIET,
    WAIT,
    WITHIN,
    EndUser,
    Live,
    api_key,
    close_of,
    conversations_path,
    customer,
    insert_events,
    open_live,
    open_live_on,
    refusal,
    run,
    say,
    socket_worker,
    start,
    ws_url,
)


def add_member(api: httpx.Client, project: Project, prefix: str = "agent") -> Staff:
    member = sign_up_staff(api, prefix)
    r = api.post(f"/v1/projects/{project.id}/members", json={"email": member.email}, headers=project.owner.auth)
    assert r.status_code == 201, r.text
    return member


def assert_increasing(live: Live, *, replayed: bool = False) -> None:
    """Event seqs grow on a connection; without a replay, they start after ``ready``'s."""
    seqs = live.seqs if replayed else [live.ready["seq"], *live.seqs]
    assert seqs == sorted(set(seqs)), f"{live.name}: seq must grow on a connection: ready {live.ready}, {seqs}"


async def quiet(*sockets: Live) -> None:
    await asyncio.gather(*(s.silent() for s in sockets))


# -- who receives what ------------------------------------------------------------


def test_every_device_and_every_staff_member_receive_what_they_may_see(
    server: Server, api: httpx.Client, project: Project
) -> None:
    admin = add_member(api, project)
    alice_phone = customer(api, project, "alice")
    alice_laptop = customer(api, project, "alice")
    assert alice_phone.id == alice_laptop.id
    bob = customer(api, project, "bob")
    backend = {"Authorization": f"Bearer {api_key(api, project, ['org.user'])}"}

    async def scenario() -> None:
        phone = await open_live(server.url, project.id, alice_phone.token, name="alice phone")
        laptop = await open_live(server.url, project.id, alice_laptop.token, by_frame=True, name="alice laptop")
        owner = await open_live(server.url, project.id, project.owner.token, name="owner")
        agent = await open_live(server.url, project.id, admin.token, by_frame=True, name="agent")
        bobs = await open_live(server.url, project.id, bob.token, name="bob")
        alice_side = [phone, laptop, owner, agent]

        conv = start(api, project.id, alice_phone.auth, title="Order 7")
        for live in alice_side:
            frame = await live.expect("conversation.created")
            assert frame["conversationId"] == conv["id"] and frame["conversation"] == conv, frame

        sent = [
            say(api, project.id, conv["id"], alice_laptop.auth, "Where is my order?", client_id="m1"),
            say(api, project.id, conv["id"], project.owner.auth, "Looking into it"),
            say(api, project.id, conv["id"], admin.auth, "It ships today"),
            say(api, project.id, conv["id"], backend, "Tracking: 123", sender_type="system"),
        ]
        for live in alice_side:
            for message in sent:
                frame = await live.expect("message.created")
                assert frame["conversationId"] == conv["id"], frame
                assert frame["message"] == message, (live.name, frame)

        r = api.patch(conversations_path(project.id, conv["id"]), json={"status": "closed"}, headers=admin.auth)
        assert r.status_code == 200, r.text
        for live in alice_side:
            frame = await live.expect("conversation.updated")
            assert frame["conversationId"] == conv["id"] and frame["conversation"] == r.json(), frame

        # Bob, another end user of the project, received none of it: his first frame is his own.
        theirs = start(api, project.id, bob.auth)
        frame = await bobs.expect("conversation.created")
        assert frame["conversationId"] == theirs["id"], f"bob received {frame}"
        for staff_socket in (owner, agent):
            assert (await staff_socket.expect("conversation.created"))["conversationId"] == theirs["id"]
        await quiet(phone, laptop, bobs)

        for live in (*alice_side, bobs):
            assert_increasing(live)
            assert live.seqs[0] > live.ready["seq"]
            await live.ping()
            await live.close()

    run(scenario())


def test_staff_of_another_project_and_unknown_projects_are_4404(
    server: Server, api: httpx.Client, project: Project
) -> None:
    user = customer(api, project)
    other = make_project(api, sign_up_staff(api, "elsewhere"))
    outsider = customer(api, other)

    async def scenario() -> None:
        assert await refusal(ws_url(server.url, project.id, other.owner.token.removeprefix("JWT "))) == 4404
        assert await refusal(ws_url(server.url, project.id, outsider.bare)) == 4404
        assert await refusal(ws_url(server.url, other.id, user.bare)) == 4404
        assert await refusal(ws_url(server.url, "0" * 24, user.bare)) == 4404
        assert await refusal(ws_url(server.url, "0" * 24, project.owner.token.removeprefix("JWT "))) == 4404
        assert await refusal(ws_url(server.url, "not-a-project", project.owner.token.removeprefix("JWT "))) == 4404
        # By auth frame too.
        url = ws_url(server.url, project.id)
        assert await refusal(url, {"type": "auth", "token": other.owner.token}) == 4404

    run(scenario())


def test_bad_or_missing_tokens_are_4401(server: Server, api: httpx.Client, project: Project) -> None:
    user = customer(api, project)
    ended = customer(api, project)
    assert api.post("/v1/auth/logout", headers=ended.auth).status_code == 200
    forged = hs256("not the server key", {"sid": "0" * 24, "sub": user.id, "knd": "end_user", "exp": 2**31})

    async def scenario() -> None:
        for token in ("garbage", forged, ended.bare):
            assert await refusal(ws_url(server.url, project.id, token)) == 4401, token
        url = ws_url(server.url, project.id)
        for first in (
            {"type": "ping"},
            "not json",
            {"type": "auth"},
            {"type": "auth", "token": 42},
            {"type": "auth", "token": "JWT garbage"},
            {"type": "auth", "token": ended.token},
        ):
            assert await refusal(url, first) == 4401, first
        # The bare token in the auth frame is accepted as well.
        async with connect(url, open_timeout=WAIT) as ws:
            await ws.send(json.dumps({"type": "auth", "token": user.bare}))
            ready = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
            assert ready["type"] == "ready", ready

    run(scenario())


def test_a_socket_without_an_auth_frame_is_closed_4401_after_10_seconds(
    server: Server, api: httpx.Client, project: Project
) -> None:
    if "sqlite" not in server.database_url:
        pytest.skip("the 10 s wait does not depend on the database: measured once, on SQLite")

    async def scenario() -> None:
        async with connect(ws_url(server.url, project.id), open_timeout=WAIT) as ws:
            began = time.monotonic()
            code, frames = await close_of(ws, 15)
            waited = time.monotonic() - began
        assert code == 4401 and frames == []
        assert 8 <= waited <= 13, f"closed after {waited:.1f} s"

    run(scenario())


def test_ping_is_answered_with_pong(server: Server, api: httpx.Client, project: Project) -> None:
    user = customer(api, project)

    async def scenario() -> None:
        live = await open_live(server.url, project.id, user.token, name="user")
        for _ in range(3):
            await live.ping()
        await live.ws.send(json.dumps({"type": "something else"}))  # ignored
        await live.ws.send("{not json")
        await live.silent()
        await live.ping()
        await live.close()

    run(scenario())


# -- sessions ending -------------------------------------------------------------------


def test_logout_closes_that_sessions_sockets_within_a_second_and_no_others(
    server: Server, api: httpx.Client, project: Project
) -> None:
    first = customer(api, project, "carol")
    second = customer(api, project, "carol")
    agent = add_member(api, project)

    async def scenario() -> None:
        a1 = await open_live(server.url, project.id, first.token, name="carol session 1, socket 1")
        a2 = await open_live(server.url, project.id, first.token, by_frame=True, name="carol session 1, socket 2")
        b = await open_live(server.url, project.id, second.token, name="carol session 2")
        staff = await open_live(server.url, project.id, agent.token, name="agent")

        assert api.post("/v1/auth/logout", headers=first.auth).status_code == 200
        began = time.monotonic()
        for live in (a1, a2):
            code, frames = await live.closed(WITHIN)
            assert code == 4001, (live.name, code)
            assert [f["type"] for f in frames] == ["session.revoked"], frames
        assert time.monotonic() - began <= WITHIN
        await quiet(b, staff)
        await b.ping()
        conv = start(api, project.id, second.auth)
        assert (await b.expect("conversation.created"))["conversationId"] == conv["id"]
        assert (await staff.expect("conversation.created"))["conversationId"] == conv["id"]
        assert api.get(conversations_path(project.id), headers=first.auth).status_code == 401
        assert await refusal(ws_url(server.url, project.id, first.bare)) == 4401

        # A staff session's sockets close the same way.
        assert api.post("/v1/auth/logout", headers=agent.auth).status_code == 200
        code, frames = await staff.closed(WITHIN)
        assert code == 4001 and [f["type"] for f in frames] == ["session.revoked"], (code, frames)
        await b.ping()
        await b.close()

    run(scenario())


def test_an_account_displaced_by_a_vouched_login_has_its_sockets_closed(
    server: Server, api: httpx.Client, project: Project
) -> None:
    email = unique_email("typed")
    r = api.post(f"/v1/projects/{project.id}/auth/email/signup", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    squatter = EndUser(r.json()["user"]["_id"], r.json()["token"])

    async def scenario() -> None:
        live = await open_live(server.url, project.id, squatter.token, name="squatter")
        code = hs256(project.secret, {"user": {"id": "the-owner", "email": email}})
        r = api.post(f"/v1/projects/{project.id}/auth/external-code", json={"externalAuthCode": code})
        assert r.status_code == 200, r.text
        closed, frames = await live.closed(WITHIN)
        assert closed == 4001 and [f["type"] for f in frames] == ["session.revoked"], (closed, frames)

    run(scenario())


@pytest.fixture(scope="module")
def short_sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """End-user sessions live 2 seconds. The socket closes on the token's own ``exp``, read by the
    socket without the database: one backend (SQLite) tells whether it does."""
    srv = start_server(
        tmp_path_factory.mktemp("short-sessions"), None, workers=1, extra_env={"CHATGATE_SESSION_TTL_SECONDS": "2"}
    )
    try:
        yield srv
    finally:
        srv.stop()


def test_a_socket_closes_4002_when_its_session_expires(short_sessions: Server) -> None:
    with httpx.Client(base_url=short_sessions.url, timeout=10) as api:
        project = make_project(api, sign_up_staff(api))
        user = customer(api, project)
        expires = json.loads(base64.urlsafe_b64decode(user.bare.split(".")[1] + "=="))["exp"]

    async def scenario() -> None:
        live = await open_live(short_sessions.url, project.id, user.token, name="expiring")
        code, frames = await live.closed(WAIT)
        assert code == 4002 and frames == [], (code, frames)
        assert time.time() >= expires - 0.5

    run(scenario())


# -- replay ---------------------------------------------------------------------------


def test_reconnecting_with_after_seq_replays_only_what_was_missed_and_visible(
    server: Server, api: httpx.Client, project: Project
) -> None:
    alice, bob = customer(api, project), customer(api, project)
    conv = start(api, project.id, alice.auth)
    bobs_conv = start(api, project.id, bob.auth)

    async def scenario() -> None:
        live = await open_live(server.url, project.id, alice.token, name="alice")
        staff = await open_live(server.url, project.id, project.owner.token, name="owner")
        first = say(api, project.id, conv["id"], alice.auth, "seen live")
        assert (await live.expect("message.created"))["message"] == first
        assert (await staff.expect("message.created"))["message"] == first
        seen, staff_seen = live.last_seq, staff.last_seq
        await live.close()
        await staff.close()

        # While both are away.
        missed = [
            say(api, project.id, conv["id"], alice.auth, "sent from another device"),
            say(api, project.id, conv["id"], project.owner.auth, "an answer"),
        ]
        say(api, project.id, bobs_conv["id"], bob.auth, "bob's business")
        r = api.patch(conversations_path(project.id, conv["id"]), json={"status": "closed"}, headers=project.owner.auth)
        assert r.status_code == 200

        back = await open_live(server.url, project.id, alice.token, after_seq=seen, name="alice again")
        assert back.ready["seq"] >= seen
        got = [await back.frame() for _ in range(3)]
        assert [f["type"] for f in got] == ["message.created", "message.created", "conversation.updated"], got
        assert [f["message"] for f in got[:2]] == missed
        assert got[2]["conversation"]["status"] == "closed"
        await back.silent()  # nothing of Bob's, nothing twice
        assert_increasing(back, replayed=True)
        assert back.seqs[0] > seen

        staff_back = await open_live(server.url, project.id, project.owner.token, after_seq=staff_seen, name="owner")
        types = [(await staff_back.frame())["type"] for _ in range(4)]
        assert types == ["message.created", "message.created", "message.created", "conversation.updated"]
        await staff_back.silent()

        # Live again: the next events arrive once (writing reopens the closed conversation).
        after = say(api, project.id, conv["id"], alice.auth, "and live again")
        reopened = await back.expect("conversation.updated")
        assert reopened["conversation"]["status"] == "open", reopened
        assert (await back.expect("message.created"))["message"] == after
        await back.silent()
        # Resuming from the last seq seen replays nothing.
        latest = await open_live(server.url, project.id, alice.token, after_seq=back.last_seq, name="alice latest")
        await latest.silent()
        for s in (back, staff_back, latest):
            await s.close()

    run(scenario())


def test_a_staff_replay_holds_what_staff_received_live_and_no_one_elses_session_ends(
    server: Server, api: httpx.Client, project: Project
) -> None:
    """A visitor is merged into a user and an email account is displaced: sessions of end users end.
    A staff socket receives the conversation events of that, never those users' ``session.revoked``;
    replayed after a reconnect, it must receive the same frames again."""

    async def scenario() -> None:
        staff = await open_live(server.url, project.id, project.owner.token, name="owner live")
        before = staff.ready["seq"]
        guest = api.post("/v1/auth/signinAnonymously", json={"id_project": project.id}).json()
        guest_user = EndUser(guest["user"]["_id"], guest["token"])
        start(api, project.id, guest_user.auth)
        claims = {"externalId": "merge-target", "iat": int(time.time())}
        r = api.post(
            f"/v1/projects/{project.id}/auth/customer/login",
            json={"jwtToken": hs256(project.secret, claims), "anonymous_token": guest_user.bare},
        )
        assert r.status_code == 200 and r.json()["merged_conversations"] == 1, r.text
        email = unique_email("typed")
        typed = api.post(f"/v1/projects/{project.id}/auth/email/signup", json={"email": email, "password": PASSWORD})
        assert typed.status_code == 200
        code = hs256(project.secret, {"user": {"id": "vouched", "email": email}})
        r = api.post(f"/v1/projects/{project.id}/auth/external-code", json={"externalAuthCode": code})
        assert r.status_code == 200
        marker = start(api, project.id, customer(api, project).auth)  # the last thing that happened

        live_frames = []
        while True:
            frame = await staff.frame()
            live_frames.append(frame)
            if frame.get("conversationId") == marker["id"]:
                break
        assert [f["type"] for f in live_frames] == [
            "conversation.created",
            "conversation.merged",
            "conversation.created",
        ], live_frames
        await staff.close()

        again = await open_live(server.url, project.id, project.owner.token, after_seq=before, name="owner replay")
        replayed = [await again.frame() for _ in range(len(live_frames))]
        extra: list[dict[str, Any]] = []
        try:
            while True:
                extra.append(await again.frame(QUIET))
        except AssertionError:
            pass
        assert replayed + extra == live_frames, f"replayed {[f['type'] for f in replayed + extra]}"
        await again.close()

    run(scenario())


def test_a_client_too_far_behind_is_told_to_resync(server: Server, api: httpx.Client, project: Project, db: Db) -> None:
    user = customer(api, project)
    conv = start(api, project.id, user.auth)

    async def scenario() -> None:
        live = await open_live(server.url, project.id, user.token, name="user")
        seen = live.ready["seq"]
        await live.close()
        insert_events(db, project.id, user.id, conv["id"], 1001)  # more than a replay holds
        back = await open_live(server.url, project.id, user.token, after_seq=seen, name="user back")
        frame = await back.frame()
        assert frame["type"] == "resync", frame
        await back.silent()  # and no partial replay
        # A seq from the future (a restored database, a confused client): resync, and live from here on.
        future = await open_live(server.url, project.id, user.token, after_seq=10**15, name="user from the future")
        assert (await future.frame())["type"] == "resync"
        await future.silent()
        message = say(api, project.id, conv["id"], user.auth, "live after the resync")
        for live in (back, future):
            assert (await live.expect("message.created"))["message"] == message, live.name
            await live.close()

    run(scenario())


def test_a_reader_that_falls_too_far_behind_is_closed_4008(
    server: Server, api: httpx.Client, project: Project, db: Db
) -> None:
    user = customer(api, project)
    conv = start(api, project.id, user.auth)

    async def scenario() -> None:
        parts = urlsplit(server.url)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a slow phone on a bad network
        sock.connect((parts.hostname, parts.port))
        ws = await connect(ws_url(server.url, project.id, user.bare), sock=sock, max_queue=1, open_timeout=WAIT)
        ready = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        assert ready["type"] == "ready"
        insert_events(db, project.id, user.id, conv["id"], 4000, size=1000)
        await asyncio.sleep(3)  # not reading, while the server queues
        frames = 0
        try:
            async with asyncio.timeout(15):
                while True:
                    await ws.recv()
                    frames += 1
        except TimeoutError:
            raise AssertionError(f"still open after {frames} frames: a reader that does not read is kept") from None
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            assert code == 4008, (code, frames)
        assert frames < 4000

    run(scenario())


# -- across processes -------------------------------------------------------------------


def test_events_and_logouts_cross_worker_processes(server: Server, api: httpx.Client, project: Project) -> None:
    one, two = worker_doors(server.url, server.process.pid)
    assert one.worker is not None and two.worker is not None
    dana = customer(api, project, "dana")
    dana_other = customer(api, project, "dana")

    async def scenario() -> None:
        on_one = await open_live_on(server, one.worker, project.id, dana.token, name="dana on worker 1")
        staff_on_two = await open_live_on(server, two.worker, project.id, project.owner.token, name="owner on 2")
        other_on_one = await open_live_on(server, one.worker, project.id, dana_other.token, name="dana 2 on 1")

        r = two.post(conversations_path(project.id), json_body={}, headers=dana.auth)
        assert r.status == 201, r.text
        conv = r.json()
        for live in (on_one, staff_on_two, other_on_one):
            frame = await live.expect("conversation.created", WITHIN)
            assert frame["conversation"] == conv
        for door, auth in ((two, dana.auth), (one, project.owner.auth)):
            posted = door.post(
                f"{conversations_path(project.id, conv['id'])}/messages", json_body={"text": "hi"}, headers=auth
            )
            assert posted.status == 201, posted.text
            for live in (on_one, staff_on_two, other_on_one):
                assert (await live.expect("message.created", WITHIN))["message"] == posted.json(), live.name

        # Logout served by worker 2 closes the session's socket held by worker 1, and only that one.
        assert two.post("/v1/auth/logout", headers=dana.auth).status == 200
        code, frames = await on_one.closed(WITHIN)
        assert code == 4001 and [f["type"] for f in frames] == ["session.revoked"], (code, frames)
        await other_on_one.ping()
        # And a staff logout served by worker 1 closes the staff socket on worker 2.
        assert one.post("/v1/auth/logout", headers=project.owner.auth).status == 200
        code, frames = await staff_on_two.closed(WITHIN)
        assert code == 4001, (code, frames)
        await other_on_one.close()

    try:
        run(scenario())
    finally:
        one.close()
        two.close()


def test_many_sockets_on_both_workers_all_receive_each_event_once(
    server: Server, api: httpx.Client, project: Project
) -> None:
    erin = customer(api, project)
    conv = start(api, project.id, erin.auth)

    async def scenario() -> None:
        sockets = [await open_live(server.url, project.id, erin.token, name=f"erin {i}") for i in range(12)]
        sockets += [await open_live(server.url, project.id, project.owner.token, name=f"owner {i}") for i in range(4)]
        workers = {socket_worker(s.ws, server) for s in sockets}
        assert len(workers) == 2, f"16 sockets landed on {workers}"
        sent = [say(api, project.id, conv["id"], erin.auth, f"n{i}") for i in range(3)]
        for live in sockets:
            for message in sent:
                assert (await live.expect("message.created", WITHIN + 1))["message"] == message, live.name
        await quiet(*sockets)
        for live in sockets:
            await live.close()

    run(scenario())


def test_concurrent_posts_reach_a_socket_once_each_in_seq_order(
    server: Server, api: httpx.Client, project: Project
) -> None:
    users = [customer(api, project) for _ in range(4)]
    convs = [start(api, project.id, u.auth) for u in users]

    async def scenario() -> None:
        staff = await open_live(server.url, project.id, project.owner.token, name="owner")
        barrier = threading.Barrier(8)

        def poster(i: int) -> list[str]:
            user, conv = users[i % 4], convs[i % 4]
            with httpx.Client(base_url=server.url, timeout=30) as own:
                own.get("/healthz")
                barrier.wait()
                return [say(own, project.id, conv["id"], user.auth, f"p{i} n{n}")["id"] for n in range(5)]

        with ThreadPoolExecutor(8) as pool:
            posted = {mid for ids in await asyncio.to_thread(lambda: list(pool.map(poster, range(8)))) for mid in ids}
        received = [(await staff.expect("message.created"))["message"]["id"] for _ in range(len(posted))]
        assert sorted(received) == sorted(posted)
        await staff.silent()
        assert_increasing(staff)
        await staff.close()

    run(scenario())


@pytest.fixture(scope="module")
def instance_b(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A second ``chatgate serve`` on the PostgreSQL database of ``server``, with its server key."""
    if server.database_url.startswith("sqlite"):
        pytest.skip("two instances share a PostgreSQL database; SQLite is covered by its two workers")
    key = (server.data_dir / "server-key").read_text().strip()
    srv = start_server(
        tmp_path_factory.mktemp("instance-b"),
        server.database_url,
        workers=1,
        extra_env={"CHATGATE_SERVER_KEY": key, "CHATGATE_DB_POOL_SIZE": "4"},
    )
    try:
        yield srv
    finally:
        srv.stop()


def test_two_instances_on_one_postgres_database_are_one_service(
    server: Server, instance_b: Server, api: httpx.Client, project: Project
) -> None:
    a, b = Door(server.url, name="instance A"), Door(instance_b.url, name="instance B")
    fay = customer(api, project, "fay")
    fay_other = customer(api, project, "fay")

    async def scenario() -> None:
        on_b = await open_live(instance_b.url, project.id, fay.token, name="fay on B")
        staff_on_b = await open_live(instance_b.url, project.id, project.owner.token, name="owner on B")
        other_on_a = await open_live(server.url, project.id, fay_other.token, name="fay (2) on A")

        r = a.post(conversations_path(project.id), json_body={"title": "on A"}, headers=fay.auth)
        assert r.status == 201, r.text
        conv = r.json()
        for live in (on_b, staff_on_b, other_on_a):
            assert (await live.expect("conversation.created", WITHIN))["conversation"] == conv, live.name
        for door, auth in ((a, fay.auth), (b, project.owner.auth)):
            posted = door.post(
                f"{conversations_path(project.id, conv['id'])}/messages", json_body={"text": "x"}, headers=auth
            )
            assert posted.status == 201, posted.text
            for live in (on_b, staff_on_b, other_on_a):
                assert (await live.expect("message.created", WITHIN))["message"] == posted.json(), live.name

        # A logout on A closes the session's socket on B within a second; the other session's stays.
        assert a.post("/v1/auth/logout", headers=fay.auth).status == 200
        code, frames = await on_b.closed(WITHIN)
        assert code == 4001 and [f["type"] for f in frames] == ["session.revoked"], (code, frames)
        await other_on_a.ping()
        # And a logout on B closes a socket on A.
        assert b.post("/v1/auth/logout", headers=fay_other.auth).status == 200
        code, _ = await other_on_a.closed(WITHIN)
        assert code == 4001
        await staff_on_b.ping()
        await staff_on_b.close()

    try:
        run(scenario())
    finally:
        a.close()
        b.close()


def test_events_committed_while_the_listen_connection_is_lost_still_arrive(
    server: Server, api: httpx.Client, project: Project, db: Db
) -> None:
    """PostgreSQL: each process hears other processes' events on a LISTEN connection. Cut it, and
    what is committed before it is back must still reach the sockets (late, not never)."""
    if server.database_url.startswith("sqlite"):
        pytest.skip("SQLite processes follow the event table: there is no connection to lose")
    user = customer(api, project)
    conv = start(api, project.id, user.auth)

    async def scenario() -> None:
        sockets = [await open_live(server.url, project.id, user.token, name=f"user {i}") for i in range(6)]
        assert len({socket_worker(s.ws, server) for s in sockets}) == 2
        cut = db.rows(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()"
        )
        assert len(cut) >= 2, f"expected a LISTEN connection per worker, found {len(cut)}"
        during = say(api, project.id, conv["id"], user.auth, "while nobody listens")
        for live in sockets:
            assert (await live.expect("message.created", WAIT))["message"] == during, live.name
        after = say(api, project.id, conv["id"], user.auth, "listening again")
        for live in sockets:
            assert (await live.expect("message.created", WAIT))["message"] == after, live.name
        await quiet(*sockets)
        for live in sockets:
            await live.close()

    run(scenario())
