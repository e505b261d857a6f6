"""The floor: the smallest ASGI app that does what every Chatgate token endpoint
must do — read a bearer HS256 JWT, verify it with Chatgate's own rules (strict
reader, pinned algorithm, joserfc signature, time claims) and answer a small
JSON body. No routing, no database. Run it on the same server as Chatgate."""

from __future__ import annotations

import os
import time
from typing import Any

import orjson

from chatgate.crypto.compact import parse_compact, strict_json_object
from chatgate.crypto.tokens import VerificationKey, verify_signature
from chatgate.domain.dialects import TimePolicy, check_times
from chatgate.errors import TokenRejected

Scope = dict[str, Any]


def create_app() -> Any:
    key = VerificationKey.hmac(os.environ["BENCH_SECRET"].encode())
    policy = TimePolicy(leeway_seconds=30, require_exp=False)

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        token = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                token = value.partition(b" ")[2]
        try:
            jws = parse_compact(token.decode("ascii"))
            verify_signature(jws, key)
            claims = strict_json_object(jws.payload, "payload")
            check_times(claims, time.time(), policy)
            status, body = 200, {"ok": True, "sub": claims.get("sub")}
        except (TokenRejected, UnicodeDecodeError) as exc:
            status, body = 401, {"ok": False, "reason": getattr(exc, "reason", "malformed")}
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
        )
        await send({"type": "http.response.body", "body": orjson.dumps(body)})

    return app
