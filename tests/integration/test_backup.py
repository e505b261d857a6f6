"""``chatgate backup`` while the server runs and writes, then the documented restore on a new machine:
the same staff, projects and users, and the project signing secrets still open (the server key came along)."""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from conftest import PASSWORD, Project, Staff, make_project, sign_up_staff, start_server
from jwt_tools import hs256, now


def chatgate(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatgate", *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )


def exchange(api: httpx.Client, project: Project, user_id: str) -> httpx.Response:
    code = hs256(project.secret, {"user": {"id": user_id, "firstname": "Ann"}, "exp": now() + 600})
    return api.post(f"/v1/projects/{project.id}/auth/external-code", json={"externalAuthCode": code})


def user_ids(api: httpx.Client, owner: Staff, project: Project) -> set[str]:
    r = api.get(f"/v1/projects/{project.id}/users", params={"limit": 200}, headers=owner.auth)
    assert r.status_code == 200, r.text
    return {u["_id"] for u in r.json()["users"]}


def test_a_backup_taken_while_the_server_writes_restores_onto_a_new_data_dir(tmp_path: Path) -> None:
    old = start_server(tmp_path, None)
    backup_dir = tmp_path / "backups" / "monday"
    try:
        with httpx.Client(base_url=old.url, timeout=30) as api:
            owner = sign_up_staff(api, "owner")
            project = make_project(api, owner)
            for n in range(5):
                assert exchange(api, project, f"before-{n}").status_code == 200
            before = user_ids(api, owner, project)

            # Sign-ins go on while the backup is taken.
            stop = threading.Event()
            written: list[int] = []

            def keep_signing_in() -> None:
                with httpx.Client(base_url=old.url, timeout=30) as writer:
                    while not stop.is_set():
                        written.append(exchange(writer, project, f"during-{secrets.token_hex(4)}").status_code)

            writer = threading.Thread(target=keep_signing_in)
            writer.start()
            try:
                done = chatgate({"CHATGATE_DATA_DIR": str(old.data_dir)}, "backup", str(backup_dir))
            finally:
                stop.set()
                writer.join()
            assert done.returncode == 0, done.stderr
            assert done.stdout.startswith("chatgate: backed up chatgate.db (") and "and server-key" in done.stdout
            assert written and set(written) == {200}
            everyone_then = user_ids(api, owner, project)
    finally:
        old.stop()

    # Owner-only, like the data directory itself.
    assert stat.S_IMODE(backup_dir.stat().st_mode) == 0o700
    found = {p.name: stat.S_IMODE(p.stat().st_mode) for p in backup_dir.iterdir()}
    assert found == {"chatgate.db": 0o600, "server-key": 0o600}

    # A second backup never overwrites the first.
    again = chatgate({"CHATGATE_DATA_DIR": str(old.data_dir)}, "backup", str(backup_dir))
    assert again.returncode != 0 and again.stderr.splitlines() == [
        f"chatgate: {backup_dir} already holds a backup (chatgate.db): give a new directory"
    ]

    # The restore of docs/deploy.md: copy the files into an empty CHATGATE_DATA_DIR, then start.
    restored = tmp_path / "restored"
    restored.mkdir(mode=0o700)
    for name in ("chatgate.db", "server-key"):
        shutil.copy2(backup_dir / name, restored / name)
    new = start_server(
        tmp_path, f"sqlite:///{restored / 'chatgate.db'}", extra_env={"CHATGATE_DATA_DIR": str(restored)}
    )
    try:
        with httpx.Client(base_url=new.url, timeout=30) as api:
            # The staff account and its password came along...
            r = api.post("/v1/auth/signin", json={"email": owner.email, "password": PASSWORD})
            assert r.status_code == 200, r.text
            # ...and so did the server key: a session signed before the backup is still good,
            r = api.get("/v1/projects", headers=owner.auth)
            assert r.status_code == 200 and project.id in [p["_id"] for p in r.json()], r.text
            # the users, every one made before the backup and some made during it,
            users = user_ids(api, owner, project)
            assert before <= users <= everyone_then
            # and the project's signing secret, sealed under the server key, verifies its tokens.
            r = exchange(api, project, "before-0")
            assert r.status_code == 200, r.text
            assert r.json()["created"] is False and r.json()["user"]["_id"] in before
            assert exchange(api, project, "after-restore").json()["created"] is True
    finally:
        new.stop()


def test_postgresql_is_backed_up_with_pg_dump(tmp_path: Path) -> None:
    done = chatgate(
        {"CHATGATE_DATA_DIR": str(tmp_path), "CHATGATE_DATABASE_URL": "postgresql://chatgate:pw@127.0.0.1:1/chatgate"},
        "backup",
        str(tmp_path / "backup"),
    )
    assert done.returncode != 0
    assert len(done.stderr.splitlines()) == 1 and "pg_dump" in done.stderr
    assert not (tmp_path / "backup").exists()
