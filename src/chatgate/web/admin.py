"""The admin panel at ``/admin``: one page whose scripts call the public ``/v1`` API with a staff session.

The page itself holds no data and needs no session: it is the same for everyone,
and everything it shows comes from the API, fetched by its scripts
(``static/admin*.js``). It may not be framed (a panel that can be framed can be
clickjacked) and is never cached.
"""

from __future__ import annotations

import html
from importlib import resources
from string import Template

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from chatgate.http.headers import page_csp
from chatgate.services.bundle import Services

TEMPLATES = resources.files("chatgate.web") / "templates"

ADMIN_HEADERS = {
    "Content-Security-Policy": page_csp(("'none'",)),
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def routes(services: Services) -> list[BaseRoute]:
    template = Template((TEMPLATES / "admin.html").read_text(encoding="utf-8"))
    # The snippets the panel shows (links, widget tag, token audiences) name the server as its users reach it.
    body = template.substitute(public_url=html.escape(services.ctx.settings.public_url))

    async def admin_page(_request: Request) -> Response:
        return HTMLResponse(body, headers=ADMIN_HEADERS)

    async def admin_slash(_request: Request) -> Response:
        return RedirectResponse("/admin", status_code=308)

    return [
        Route("/admin", admin_page, methods=["GET"]),
        Route("/admin/", admin_slash, methods=["GET"]),
    ]
