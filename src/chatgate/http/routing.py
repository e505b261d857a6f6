"""Endpoints declared once: the route table and the OpenAPI document come from the same list."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from starlette.responses import HTMLResponse
from starlette.routing import Route

from chatgate.http.requests import Handler
from chatgate.http.schemas import ErrorOut

SECURITY_SCHEMES = {
    "session": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "A Chatgate session: `JWT <token>` or `Bearer <token>`",
    },
    "customerToken": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "A token signed by your backend with the project secret: `JWT <token>`",
    },
    "apiKey": {"type": "http", "scheme": "bearer", "description": "A project API key"},
    "staffBasic": {
        "type": "http",
        "scheme": "basic",
        "description": "A staff account's email and password, on staff routes, only where the server turns it on"
        " (CHATGATE_STAFF_BASIC_AUTH); never from a browser (a request with Origin), never for end users",
    },
}

_STATUS_TEXT = {
    400: "Malformed request",
    401: "Not authenticated, or a token was rejected",
    403: "Not allowed",
    404: "Unknown resource",
    409: "Conflict",
    413: "Body or token too large",
    422: "Field validation failed",
    429: "Rate limited (see Retry-After)",
}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    auth: str | None = None
    errors: tuple[int, ...] = (400, 422)
    query: tuple[tuple[str, str], ...] = ()
    # Other credentials the route also takes. A "session" route also takes staff HTTP Basic unless session_only.
    alt_auth: tuple[str, ...] = ()
    session_only: bool = False
    # The body may also be a URL-encoded form (the Tiledesk sign-in routes; the handler reads it so).
    forms: bool = False

    @property
    def security(self) -> list[str]:
        """The credentials the route takes, the main one first."""
        if self.auth is None:
            return []
        basic = ("staffBasic",) if self.auth == "session" and not self.session_only else ()
        return [self.auth, *self.alt_auth, *basic]


def starlette_routes(endpoints: Sequence[Endpoint]) -> list[Route]:
    return [Route(e.path, e.handler, methods=[e.method]) for e in endpoints]


# Routes outside the JSON API, listed so the document names every route the server answers.
PAGES: tuple[tuple[str, str, str, str], ...] = (
    (
        "/healthz",
        'Health: {"status": "ok"}, or 503 {"status": "unavailable", "reason": "database unreachable"}',
        "application/json",
        "system",
    ),
    ("/", "Chat page of the default project; ?externalAuthCode=… signs the visitor in", "text/html", "pages"),
    ("/p/{pid}/", "Chat page of a project; ?externalAuthCode=… signs the visitor in", "text/html", "pages"),
    ("/widget.js", "The embeddable widget (data-external-auth-code, data-project)", "application/javascript", "pages"),
    ("/admin", "The admin panel: projects, settings, keys, users, inbox, audit, members", "text/html", "pages"),
    ("/openapi.json", "This document", "application/json", "system"),
    ("/docs", "A readable list of every route", "text/html", "system"),
)


METRICS_PAGE = (
    "/metrics",
    "Prometheus metrics (CHATGATE_METRICS): a bearer token, or this machine only",
    "text/plain",
    "system",
)


def openapi_document(
    endpoints: Sequence[Endpoint],
    public_url: str,
    version: str,
    *,
    metrics_page: bool = False,
    staff_basic: bool = True,
) -> dict[str, Any]:
    """The OpenAPI document of what this server answers: staff HTTP Basic only where it is turned on."""
    schemas: dict[str, Any] = {}
    schemes = {name: scheme for name, scheme in SECURITY_SCHEMES.items() if staff_basic or name != "staffBasic"}

    def ref(model: type[BaseModel]) -> dict[str, str]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        operation: dict[str, Any] = {
            "summary": e.summary,
            "tags": [e.tag],
            "operationId": e.handler.__name__,
            "responses": {
                str(e.status): {
                    "description": "Success",
                    "content": {"application/json": {"schema": ref(e.response) if e.response else {}}},
                }
            },
        }
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _path_params(e.path)
        ]
        params += [
            {"name": name, "in": "query", "required": False, "schema": {"type": "string"}, "description": text}
            for name, text in e.query
        ]
        if params:
            operation["parameters"] = params
        if e.body is not None:
            content = {"application/json": {"schema": ref(e.body)}}
            if e.forms:
                content["application/x-www-form-urlencoded"] = {"schema": ref(e.body)}
            operation["requestBody"] = {"required": True, "content": content}
        if e.auth:
            operation["security"] = [{name: []} for name in e.security if name in schemes]
        error_ref = ref(ErrorOut)
        for status in sorted(set(e.errors) | ({401} if e.auth else set())):
            operation["responses"][str(status)] = {
                "description": _STATUS_TEXT.get(status, "Error"),
                "content": {"application/json": {"schema": error_ref}},
            }
        paths.setdefault(_openapi_path(e.path), {})[e.method.lower()] = operation
    for path, summary, media_type, tag in (*PAGES, METRICS_PAGE) if metrics_page else PAGES:
        operation = {
            "summary": summary,
            "tags": [tag],
            "responses": {"200": {"description": "Success", "content": {media_type: {}}}},
        }
        if "{pid}" in path:
            operation["parameters"] = [{"name": "pid", "in": "path", "required": True, "schema": {"type": "string"}}]
        if path in ("/", "/p/{pid}/"):
            operation.setdefault("parameters", []).append(
                {"name": "externalAuthCode", "in": "query", "required": False, "schema": {"type": "string"}}
            )
        paths[path] = {"get": operation}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Chatgate",
            "version": version,
            "description": "Sign users into chat with a JWT from your backend. See the README for the walk-through.",
        },
        "servers": [{"url": public_url}],
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": schemes},
    }


def _path_params(path: str) -> list[str]:
    return [part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{")]


def _openapi_path(path: str) -> str:
    return "/".join("{" + part[1:-1].split(":")[0] + "}" if part.startswith("{") else part for part in path.split("/"))


def docs_page(document: dict[str, Any]) -> HTMLResponse:
    """A readable list of every route, served without any outside script."""
    rows = []
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(op['summary'])}</td><td>{html.escape(', '.join(op.get('tags', [])))}</td></tr>"
            )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Chatgate API</title>"
        "<link rel='stylesheet' href='/static/docs.css'></head><body>"
        "<h1>Chatgate API</h1><p>The machine-readable document is at "
        "<a href='/openapi.json'>/openapi.json</a>.</p><table><tr><th>Method</th><th>Path</th>"
        "<th>What it does</th><th>Area</th></tr>" + "".join(rows) + "</table></body></html>"
    )
    return HTMLResponse(page)
