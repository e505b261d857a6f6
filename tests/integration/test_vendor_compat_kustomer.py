"""Kustomer's sample server and REST habits against Chatgate: login({jwtToken}) with both email and
externalId, the answer its callback reads, and a backend reading users with an org.user API key."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx

from async_tools import run_async
from chatgate.domain.ids import new_id
from chatgate.domain.models import CreatedVia, NewEndUser, StaffAccount
from chatgate.domain.models import Project as ProjectRow
from chatgate.storage.migrate import upgrade
from chatgate.storage.postgres import PostgresStorage
from conftest import Db, Project, make_project, unique_email
from jwt_tools import hs256, now


def login(api: httpx.Client, project: Project, token: str) -> httpx.Response:
    return api.post(f"/v1/projects/{project.id}/auth/customer/login", json={"jwtToken": token})


def signed(project: Project, claims: dict[str, Any]) -> str:
    return hs256(project.secret, {"iat": now(), **claims})


def test_the_sample_s_callback_finds_email_and_external_id_at_the_top(
    api: httpx.Client, project: Project, node_mint: Any
) -> None:
    both = login(api, project, node_mint("kustomer", project.secret, {"externalId": "user_id", "email": "S@Ex.com"}))
    assert both.status_code == 200, both.text
    body = both.json()
    assert (body["email"], body["externalId"]) == ("s@ex.com", "user_id")
    assert (body["user"]["email"], body["user"]["externalId"]) == ("s@ex.com", "user_id")
    assert body["success"] is True and body["token"].startswith("JWT ")
    only_id = login(api, project, node_mint("kustomer", project.secret, {"externalId": "only-id"})).json()
    assert (only_id["email"], only_id["externalId"]) == (None, "only-id")
    # Staff (and the backend) find the customer by the externalId the login gave it.
    found = api.get(f"/v1/projects/{project.id}/users/user_id", headers=project.owner.auth)
    assert found.status_code == 200 and found.json()["_id"] == body["user"]["_id"]


def attached_audits(db: Db, user_id: str) -> int:
    rows = db.rows(
        "SELECT details FROM audit_events WHERE action = 'end_user:signin:succeeded' AND subject_id = :u", u=user_id
    )
    details = [json.loads(d) if isinstance(d, str) else d for (d,) in rows]
    return sum(1 for d in details if d.get("external_id_attached") is True)


def test_the_external_id_joins_the_email_s_user_only_when_nobody_holds_it(
    api: httpx.Client, project: Project, db: Db
) -> None:
    holder = login(api, project, signed(project, {"externalId": "k-1"})).json()["user"]
    email = unique_email("kim")
    # Held by another user: the email still signs in, and nothing changes.
    first = login(api, project, signed(project, {"email": email, "externalId": "k-1"}))
    assert first.status_code == 200, first.text
    kim = first.json()["user"]
    assert kim["_id"] != holder["_id"] and kim["externalId"] is None and first.json()["externalId"] is None
    # Free, and the email's user has none: it is theirs from now on.
    second = login(api, project, signed(project, {"email": email, "externalId": "k-2"})).json()
    assert second["user"]["_id"] == kim["_id"]
    assert second["externalId"] == second["user"]["externalId"] == "k-2"
    by_external_id = api.get(f"/v1/projects/{project.id}/users/k-2", headers=project.owner.auth)
    assert by_external_id.json()["_id"] == kim["_id"]
    assert login(api, project, signed(project, {"externalId": "k-2"})).json()["user"]["_id"] == kim["_id"]
    # The user has one already: a different one is not taken, and it does not move.
    third = login(api, project, signed(project, {"email": email, "externalId": "k-3"})).json()
    assert third["user"]["externalId"] == "k-2"
    # An externalId that is some user's _id would hide that user from lookups by id: never given.
    other = login(api, project, signed(project, {"email": unique_email("ola")}))
    shadow = login(api, project, signed(project, {"email": other.json()["user"]["email"], "externalId": kim["_id"]}))
    assert shadow.status_code == 200 and shadow.json()["user"]["externalId"] is None
    assert (
        api.get(f"/v1/projects/{project.id}/users/{kim['_id']}", headers=project.owner.auth).json()["_id"]
        == (kim["_id"])
    )
    assert db.count("end_users", "project_id = :p AND external_id = 'k-3'", p=project.id) == 0
    assert db.count("end_users", "project_id = :p", p=project.id) == 3
    assert attached_audits(db, kim["_id"]) == 1


def test_attaching_an_external_id_while_another_login_creates_its_holder(
    api: httpx.Client, project: Project, db: Db
) -> None:
    """Both at once, many times over: every login succeeds and one user ends up holding each externalId."""
    pairs = [(unique_email(f"race{i}"), f"race-{i}") for i in range(12)]

    def by_email(pair: tuple[str, str]) -> httpx.Response:
        return login(api, project, signed(project, {"email": pair[0], "externalId": pair[1]}))

    def by_external_id(pair: tuple[str, str]) -> httpx.Response:
        return login(api, project, signed(project, {"externalId": pair[1]}))

    with ThreadPoolExecutor(8) as pool:
        emails = [pool.submit(by_email, pair) for pair in pairs]
        ids = [pool.submit(by_external_id, pair) for pair in pairs]
        answers = [(e.result(), i.result()) for e, i in zip(emails, ids, strict=True)]
    for (email_login, id_login), (_, external_id) in zip(answers, pairs, strict=True):
        assert email_login.status_code == 200, email_login.text
        assert id_login.status_code == 200, id_login.text
        holder = db.rows(
            "SELECT id FROM end_users WHERE project_id = :p AND external_id = :x", p=project.id, x=external_id
        )
        assert len(holder) == 1
        # Whoever holds it is whom the externalId login reached.
        assert id_login.json()["user"]["_id"] == holder[0][0]
        if email_login.json()["externalId"] == external_id:
            assert email_login.json()["user"]["_id"] == holder[0][0]


def api_key(api: httpx.Client, project: Project, roles: list[str]) -> tuple[str, str]:
    r = api.post(
        f"/v1/projects/{project.id}/apikeys",
        json={"name": "Backend", "roles": roles, "expires_in_days": None},
        headers=project.owner.auth,
    )
    assert r.status_code == 201, r.text
    return r.json()["key"], r.json()["id"]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_a_backend_reads_users_with_an_org_user_api_key(api: httpx.Client, project: Project, db: Db) -> None:
    customer = login(api, project, signed(project, {"externalId": "k-read", "email": unique_email("read")})).json()
    users = f"/v1/projects/{project.id}/users"
    reader, _ = api_key(api, project, ["org.user"])
    both, _ = api_key(api, project, ["org.admin", "org.user"])
    for key in (reader, both):
        listed = api.get(users, headers=bearer(key))
        assert listed.status_code == 200, listed.text
        assert [u["_id"] for u in listed.json()["users"]] == [customer["user"]["_id"]]
        assert listed.json()["seats"] == {"used": 1, "limit": None}
        for ref in ("k-read", customer["user"]["_id"]):
            one = api.get(f"{users}/{ref}", headers=bearer(key))
            assert one.status_code == 200 and one.json()["createdVia"] == "customer_login"
    assert api.get(f"{users}/nobody", headers=bearer(reader)).json()["error"]["code"] == "user_not_found"

    # An org.admin key is for settings, not customer data.
    admin_only, _ = api_key(api, project, ["org.admin"])
    refused = api.get(users, headers=bearer(admin_only))
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")
    assert "org.user" in refused.json()["msg"]
    # Another project's key names no project of its own here.
    other = make_project(api, project.owner)
    foreign, _ = api_key(api, other, ["org.user"])
    for path in (users, f"{users}/k-read"):
        r = api.get(path, headers=bearer(foreign))
        assert (r.status_code, r.json()["error"]["code"]) == (404, "project_not_found")
    assert api.get(f"/v1/projects/{other.id}/users", headers=bearer(foreign)).json()["users"] == []
    revoked, revoked_id = api_key(api, project, ["org.user"])
    api.delete(f"/v1/projects/{project.id}/apikeys/{revoked_id}", headers=project.owner.auth)
    for key in (revoked, "cgk_000000000000_notakey"):
        r = api.get(users, headers=bearer(key))
        assert (r.status_code, r.json()["error"]["code"]) == (401, "invalid_api_key")

    # Everything else about users stays with staff: a key changes nothing.
    live = "subject_id = :u AND revoked_at IS NULL"
    sessions = db.count("sessions", live, u=customer["user"]["_id"])
    assert api.post(f"{users}/k-read/logout", headers=bearer(both)).status_code == 401
    assert api.get(f"{users}/k-read/sessions", headers=bearer(both)).status_code == 401
    change = {"settings": {"seat_limit": 1}}
    assert api.patch(f"/v1/projects/{project.id}", json=change, headers=bearer(both)).status_code == 401
    assert db.count("sessions", live, u=customer["user"]["_id"]) == sessions
    settings = api.get(f"/v1/projects/{project.id}", headers=project.owner.auth).json()["settings"]
    assert settings["seat_limit"] is None


def test_on_postgresql_an_uncommitted_holder_leaves_the_attaching_transaction_unharmed(
    postgres_database: str,
) -> None:
    """The race the HTTP test above can only hope to hit, made to happen: a login creating the holder of an
    externalId has not committed when another login tries to give it to its email's user. The attach waits,
    then answers "not given" without an error, and its transaction goes on and commits."""
    upgrade(postgres_database)
    now_ = datetime.now(UTC)
    staff = StaffAccount(new_id(), unique_email("race"), "A", "B", False, "x", now_, now_)
    project = ProjectRow(new_id(), "Race", now_, {})
    kim = new_id()

    async def scenario(storage: PostgresStorage) -> tuple[bool, bool, int, int]:
        async with storage.write() as tx:
            await tx.staff.add(staff)
            await tx.projects.add(project, staff.id, now_)
            by_email = NewEndUser(CreatedVia.CUSTOMER_LOGIN, email="k@x.io")
            await tx.end_users.add_if_absent(kim, project.id, by_email, now_)
        inserted, release = asyncio.Event(), asyncio.Event()

        async def create_holder() -> None:
            async with storage.write() as tx:
                holder = NewEndUser(CreatedVia.CUSTOMER_LOGIN, external_id="contested")
                await tx.end_users.add_if_absent(new_id(), project.id, holder, now_)
                inserted.set()
                await release.wait()

        async def attach() -> bool:
            await inserted.wait()
            async with storage.write() as tx:
                given = await tx.end_users.attach_external_id(kim, project.id, "contested")
                await tx.end_users.seen(kim, now_, {"firstname": "Kim"})  # the transaction goes on
            return given

        creating = asyncio.create_task(create_holder())
        attaching = asyncio.create_task(attach())
        await asyncio.sleep(0.5)
        waited = not attaching.done()  # held up by the holder's uncommitted row in the unique index
        release.set()
        await creating
        given = await attaching
        async with storage.read() as tx:
            holders = int(
                await tx.sql.scalar(
                    "SELECT COUNT(*) FROM end_users WHERE project_id = :p AND external_id = 'contested'", p=project.id
                )
            )
            named = int(
                await tx.sql.scalar("SELECT COUNT(*) FROM end_users WHERE id = :k AND firstname = 'Kim'", k=kim)
            )
        return waited, given, holders, named

    async def run() -> tuple[bool, bool, int, int]:
        storage = PostgresStorage(postgres_database, pool_size=3)
        await storage.start()
        try:
            return await scenario(storage)
        finally:
            await storage.close()

    assert run_async(run()) == (True, False, 1, 1)
