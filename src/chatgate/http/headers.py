"""Headers every answer carries: pages under a Content-Security-Policy without inline scripts.

Pages that may be framed (the chat page, in the widget) set their own policy
with the project's ``frame-ancestors``; every other HTML answer gets the
default one, which nobody may frame.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def page_csp(frame_ancestors: Iterable[str] = ("'none'",)) -> str:
    """Scripts, styles and requests only from Chatgate itself; framing only by ``frame_ancestors``."""
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none';"
        f" base-uri 'none'; form-action 'self'; frame-ancestors {' '.join(frame_ancestors)}"
    )


DEFAULT_CSP = page_csp().encode()


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                names = {name.lower() for name, _ in headers}
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                is_html = any(
                    name.lower() == b"content-type" and value.startswith(b"text/html") for name, value in headers
                )
                if is_html and b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", DEFAULT_CSP))
                    headers.append((b"referrer-policy", b"no-referrer"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
