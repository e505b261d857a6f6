"""The chat page (``/`` and ``/p/{pid}/``), the widget script and static files.

The page never acts on the code during the GET: its script exchanges the code
with a POST and removes it from the address bar.
"""

from __future__ import annotations

import html
from importlib import resources
from string import Template

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from chatgate.domain.ids import looks_like_id
from chatgate.domain.models import Project
from chatgate.http.headers import page_csp
from chatgate.services.bundle import Services

STATIC = resources.files("chatgate.web") / "static"
TEMPLATES = resources.files("chatgate.web") / "templates"


def page_headers(project: Project | None) -> dict[str, str]:
    """No inline scripts, nothing from other origins; framed (the widget) only where the project allows.

    A project that lists no ``allowed_origins`` may be framed by any site.
    """
    origins = project.effective_settings["allowed_origins"] if project is not None else []
    return {
        "Content-Security-Policy": page_csp(["'self'", *origins] if origins else ["*"]),
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def _template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))


def routes(services: Services) -> list[BaseRoute]:
    chat = _template("chat.html")
    notice = _template("notice.html")
    widget = (STATIC / "widget.js").read_bytes()

    async def find_project(project_id: str | None) -> Project | None:
        async with services.ctx.storage.read() as tx:
            if project_id is None:
                configured = services.ctx.settings.default_project
                return await tx.projects.get(configured) if configured else await tx.projects.oldest()
            return await tx.projects.get(project_id) if looks_like_id(project_id) else None

    def notice_page(status: int, code: str, title: str, text: str) -> HTMLResponse:
        body = notice.substitute(code=html.escape(code), title=html.escape(title), text=html.escape(text))
        return HTMLResponse(body, status_code=status, headers=page_headers(None))

    async def render(request: Request, project_id: str | None) -> Response:
        project = await find_project(project_id)
        if project is None:
            if project_id is None:
                return notice_page(
                    404,
                    "no_project",
                    "Chatgate is running",
                    "No project exists yet. Create one in the admin panel at /admin.",
                )
            return notice_page(404, "project_not_found", "Unknown chat", "This chat does not exist.")
        body = chat.substitute(
            title=html.escape(project.name),
            project_id=html.escape(project.id),
            allowed_origins=html.escape(" ".join(project.effective_settings["allowed_origins"])),
            anonymous="1" if project.effective_settings["auth_methods"]["anonymous"] else "0",
            body_class="embed" if request.query_params.get("embed") == "1" else "",
        )
        return HTMLResponse(body, headers=page_headers(project))

    async def default_page(request: Request) -> Response:
        return await render(request, None)

    async def project_page(request: Request) -> Response:
        return await render(request, request.path_params["pid"])

    async def project_page_slash(request: Request) -> Response:
        url = request.url
        return RedirectResponse(url.replace(path=url.path + "/"), status_code=308)

    async def widget_js(_request: Request) -> Response:
        return Response(
            widget,
            media_type="application/javascript",
            headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
        )

    return [
        Route("/", default_page, methods=["GET"]),
        Route("/p/{pid}/", project_page, methods=["GET"]),
        Route("/p/{pid}", project_page_slash, methods=["GET"]),
        Route("/widget.js", widget_js, methods=["GET"]),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ]
