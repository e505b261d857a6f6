"""A socket whose client stops reading is dropped (close 4008), not buffered without bound."""

from __future__ import annotations

import asyncio
import socket
from concurrent.futures import ThreadPoolExecutor

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from conftest import Server, make_project, sign_up_staff

CLOSE_TOO_SLOW = 4008
LONG_TEXT = "x" * 9_000


def test_a_client_that_stops_reading_is_dropped_and_others_keep_receiving(sqlite_server: Server) -> None:
    with httpx.Client(base_url=sqlite_server.url, timeout=30) as api:
        project = make_project(api, sign_up_staff(api), {"auth_methods": {"anonymous": True}})
        token = api.post("/v1/auth/signinAnonymously", json={"id_project": project.id}).json()["token"]
        headers = {"Authorization": token}
        cid = api.post(f"/v1/projects/{project.id}/conversations", json={}, headers=headers).json()["id"]
    url = sqlite_server.url.replace("http://", "ws://") + f"/v1/projects/{project.id}/ws?token={token.split()[1]}"
    post_url = f"{sqlite_server.url}/v1/projects/{project.id}/conversations/{cid}/messages"

    def post_many(count: int) -> None:
        with httpx.Client(timeout=30) as client:
            for _ in range(count):
                assert client.post(post_url, json={"text": LONG_TEXT}, headers=headers).status_code == 201

    async def scenario() -> None:
        # A small receive buffer, so the server's sends block soon after the client stops reading.
        raw = socket.create_connection(("127.0.0.1", int(sqlite_server.url.rsplit(":", 1)[1])))
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        async with connect(url, sock=raw, max_queue=1) as sleeper, connect(url) as reader:
            assert '"ready"' in str(await asyncio.wait_for(sleeper.recv(), 10))
            assert '"ready"' in str(await asyncio.wait_for(reader.recv(), 10))
            sleeper.transport.pause_reading()  # the sleeping device reads nothing from now on

            async def read_all() -> int:
                received = 0
                while received < 600:
                    frame = str(await asyncio.wait_for(reader.recv(), 20))
                    received += '"message.created"' in frame
                return received

            reading = asyncio.create_task(read_all())
            loop = asyncio.get_running_loop()
            with ThreadPoolExecutor(4) as pool:
                await asyncio.gather(*(loop.run_in_executor(pool, post_many, 150) for _ in range(4)))
            assert await reading == 600  # the device that reads gets every message
            sleeper.transport.resume_reading()
            with_close = None
            try:
                while True:
                    await asyncio.wait_for(sleeper.recv(), 20)
            except ConnectionClosed as closed:
                with_close = closed.rcvd.code if closed.rcvd else None
            assert with_close in (CLOSE_TOO_SLOW, None)  # 4008, or cut off if the close frame could not be sent

    asyncio.run(scenario())
