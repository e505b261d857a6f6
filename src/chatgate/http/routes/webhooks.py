"""Webhooks and their deliveries (issue 10 §4)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from chatgate.domain.webhooks import DeliveryStatus
from chatgate.errors import ValidationFailed
from chatgate.http import presenters
from chatgate.http.requests import json, parse_body, query_int, session_caller
from chatgate.http.routing import Endpoint
from chatgate.http.schemas import DeliveryListOut, DeliveryOut, WebhookCreate, WebhookListOut, WebhookOut
from chatgate.services.bundle import Services

BASE = "/v1/projects/{pid}/webhooks"


def endpoints(services: Services) -> list[Endpoint]:
    webhooks = services.webhooks

    async def create_webhook(request: Request) -> Response:
        body = await parse_body(request, WebhookCreate)
        caller = await session_caller(services, request)
        created = await webhooks.create(request.path_params["pid"], body.url, body.events, caller)
        return json(presenters.webhook(created.webhook, created.secret), 201)

    async def list_webhooks(request: Request) -> Response:
        caller = await session_caller(services, request)
        found = await webhooks.list_webhooks(request.path_params["pid"], caller)
        return json({"webhooks": [presenters.webhook(w) for w in found]})

    async def delete_webhook(request: Request) -> Response:
        pid, webhook_id = request.path_params["pid"], request.path_params["webhook_id"]
        caller = await session_caller(services, request)
        await webhooks.delete(pid, webhook_id, caller)
        return json({"success": True, "id": webhook_id, "deleted": True})

    async def list_deliveries(request: Request) -> Response:
        limit = query_int(request, "limit", 1, 200, 50)
        status = _status(request.query_params.get("status"))
        caller = await session_caller(services, request)
        page = await webhooks.deliveries(
            request.path_params["pid"],
            request.path_params["webhook_id"],
            caller,
            status=status,
            limit=limit,
            cursor=request.query_params.get("cursor"),
        )
        return json({"deliveries": [presenters.delivery(d) for d in page.deliveries], "next_cursor": page.next_cursor})

    async def resend_delivery(request: Request) -> Response:
        params = request.path_params
        caller = await session_caller(services, request)
        delivery = await webhooks.resend(params["pid"], params["webhook_id"], params["delivery_id"], caller)
        return json(presenters.delivery(delivery), 202)

    managed = (403, 404)
    return [
        Endpoint(
            "POST",
            BASE,
            create_webhook,
            "Register a webhook (its signing secret is shown once)",
            "webhooks",
            body=WebhookCreate,
            response=WebhookOut,
            status=201,
            auth="session",
            errors=(400, 409, 422, *managed),
        ),
        Endpoint(
            "GET",
            BASE,
            list_webhooks,
            "List the project's webhooks (never their secrets)",
            "webhooks",
            response=WebhookListOut,
            auth="session",
            errors=managed,
        ),
        Endpoint(
            "DELETE",
            BASE + "/{webhook_id}",
            delete_webhook,
            "Delete a webhook and its deliveries",
            "webhooks",
            auth="session",
            errors=managed,
        ),
        Endpoint(
            "GET",
            BASE + "/{webhook_id}/deliveries",
            list_deliveries,
            "A webhook's deliveries, newest first",
            "webhooks",
            response=DeliveryListOut,
            auth="session",
            errors=(*managed, 422),
            query=(
                ("status", "pending, delivered or failed"),
                ("limit", "1-200, default 50"),
                ("cursor", "next_cursor of the previous page"),
            ),
        ),
        Endpoint(
            "POST",
            BASE + "/{webhook_id}/deliveries/{delivery_id}/resend",
            resend_delivery,
            "Send a delivery again (pending, due now)",
            "webhooks",
            response=DeliveryOut,
            status=202,
            auth="session",
            errors=managed,
        ),
    ]


def _status(raw: str | None) -> DeliveryStatus | None:
    if raw is None or raw == "":
        return None
    try:
        return DeliveryStatus(raw)
    except ValueError:
        raise ValidationFailed({"status": "must be pending, delivered or failed"}) from None
