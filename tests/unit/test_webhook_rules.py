"""Webhook rules without a server: addresses, events, the retry schedule, the signature, the sender."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from async_tools import run_async
from chatgate.domain.webhooks import (
    Delivery,
    DeliveryStatus,
    Outcome,
    WebhookEvent,
    after_failure,
    parse_events,
    retry_wait,
    url_problem,
)
from chatgate.services.webhooks import delivery_body, signature
from chatgate.webhook_sender import HttpWebhookSender, Resolver

PUBLIC_IP = "93.184.215.14"


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/chatgate",
        "https://hooks.example.com:8443/in?token=x",
        f"https://{PUBLIC_IP}/hook",
        "https://[2606:4700:4700::1111]/hook",
    ],
)
def test_public_https_urls_are_accepted(url: str) -> None:
    assert url_problem(url, allow_private=False) is None


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://hooks.example.com/", "https://"),
        ("ftp://hooks.example.com/", "https://"),
        ("hooks.example.com/in", "https://"),
        ("https://", "https://"),
        ("https://127.0.0.1/", "public address"),
        ("https://127.1.2.3:8443/", "public address"),
        ("https://10.0.0.8/", "public address"),
        ("https://172.16.5.4/", "public address"),
        ("https://192.168.1.1/", "public address"),
        ("https://169.254.169.254/latest/meta-data", "public address"),
        ("https://100.64.0.1/", "public address"),
        ("https://0.0.0.0/", "public address"),
        ("https://224.0.0.1/", "public address"),
        ("https://255.255.255.255/", "public address"),
        ("https://[::1]/", "public address"),
        ("https://[fe80::1]/", "public address"),
        ("https://[fc00::1]/", "public address"),
        ("https://[ff02::1]/", "public address"),
        ("https://[::ffff:127.0.0.1]/", "public address"),
        ("https://localhost/", "public address"),
        ("https://LOCALHOST./", "public address"),
        ("https://api.localhost/", "public address"),
        ("https://user:pw@hooks.example.com/", "user name or password"),
        ("https://hooks.example.com/#frag", "fragment"),
        ("https://hooks.example.com:99999/", "valid URL"),
        ("https://hooks.example.com/a b", "spaces"),
        ("https://hooks.example.com/" + "a" * 2048, "2048"),
    ],
)
def test_other_urls_are_refused_with_a_reason(url: str, says: str) -> None:
    problem = url_problem(url, allow_private=False)
    assert problem is not None and says in problem


def test_the_operator_may_allow_private_addresses_and_plain_http() -> None:
    for url in ("http://127.0.0.1:8080/hook", "https://10.0.0.8/", "http://localhost/x"):
        assert url_problem(url, allow_private=True) is None
    assert url_problem("ftp://127.0.0.1/", allow_private=True) is not None


def test_events_are_checked_and_kept_once_in_a_stable_order() -> None:
    assert parse_events(["message.created", "user.created", "message.created"]) == (
        (WebhookEvent.USER_CREATED, WebhookEvent.MESSAGE_CREATED),
        None,
    )
    events, problem = parse_events(["user.created", "user.deleted"])
    assert events == () and problem is not None and "user.deleted" in problem
    assert parse_events([])[1] == "must name at least one event"


def test_retries_back_off_exponentially_up_to_an_hour_and_last_a_day() -> None:
    waits = [retry_wait(n, 10).total_seconds() for n in range(1, 13)]
    assert waits[:5] == [10, 20, 40, 80, 160]
    assert max(waits) == 3600 and waits[-1] == 3600
    assert sum(retry_wait(n, 10).total_seconds() for n in range(1, 40)) > 24 * 3600  # never gives up early

    created = datetime(2026, 1, 1, tzinfo=UTC)
    delivery = _delivery(created, attempts=3)
    status, at = after_failure(delivery, created + timedelta(hours=23), 10)
    assert status is DeliveryStatus.PENDING and at == created + timedelta(hours=23, seconds=40)
    status, _ = after_failure(delivery, created + timedelta(hours=24), 10)
    assert status is DeliveryStatus.FAILED


def test_the_body_and_signature_follow_the_documented_algorithm() -> None:
    delivery = _delivery(datetime(2026, 1, 1, 8, 30, tzinfo=UTC))
    body = delivery_body(delivery)
    assert json.loads(body) == {
        "id": delivery.id,
        "type": "message.created",
        "createdAt": "2026-01-01T08:30:00.000Z",
        "projectId": "p" * 24,
        "data": {"text": "héllo"},
    }
    header = signature("whsec_test", 1767256200, body)
    expected = hmac.new(b"whsec_test", b"1767256200." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1767256200,v1={expected}"


def _delivery(created: datetime, attempts: int = 1) -> Delivery:
    return Delivery(
        "d" * 24,
        "w" * 24,
        "p" * 24,
        WebhookEvent.MESSAGE_CREATED,
        '{"text":"héllo"}',
        DeliveryStatus.PENDING,
        attempts,
        created,
        created,
    )


# -- the sender ------------------------------------------------------------


class Recorder:
    def __init__(self, status: int = 204) -> None:
        self.status = status
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status, headers={"Location": "https://elsewhere.example/"})


def _resolving_to(*addresses: str) -> Resolver:
    async def resolver(_host: str, _port: int) -> list[str]:
        return list(addresses)

    return resolver


def _send(sender: HttpWebhookSender, url: str) -> Outcome:
    async def go() -> Outcome:
        try:
            return await sender.send(url, b"{}", {"Content-Type": "application/json"})
        finally:
            await sender.close()

    return run_async(go())


def test_a_name_resolving_to_a_private_address_is_refused_without_connecting() -> None:
    for private in ("10.1.2.3", "127.0.0.1", "::1", "169.254.169.254", "fe80::1%eth0"):
        recorder = Recorder()
        sender = HttpWebhookSender(
            False, resolver=_resolving_to(PUBLIC_IP, private), transport=httpx.MockTransport(recorder)
        )
        outcome = _send(sender, "https://hooks.example.com/in")
        assert outcome.status_code is None and not outcome.delivered
        assert outcome.error is not None and f"hooks.example.com resolves to {private}" in outcome.error
        assert "not a public address" in outcome.error
        assert recorder.requests == []


def test_the_request_goes_to_the_address_that_was_checked_with_the_name_in_host_and_tls() -> None:
    recorder = Recorder(204)
    sender = HttpWebhookSender(False, resolver=_resolving_to(PUBLIC_IP), transport=httpx.MockTransport(recorder))
    outcome = _send(sender, "https://hooks.example.com:8443/in?x=1")
    assert outcome.delivered and outcome.status_code == 204
    (request,) = recorder.requests
    assert str(request.url) == f"https://{PUBLIC_IP}:8443/in?x=1"
    assert request.headers["host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"


def test_redirects_and_errors_are_failures_with_a_reason() -> None:
    recorder = Recorder(302)
    sender = HttpWebhookSender(False, resolver=_resolving_to(PUBLIC_IP), transport=httpx.MockTransport(recorder))
    outcome = _send(sender, "https://hooks.example.com/in")
    assert outcome.status_code == 302 and "redirects are not followed" in (outcome.error or "")
    assert len(recorder.requests) == 1

    refused = _send(HttpWebhookSender(False), "http://hooks.example.com/in")
    assert refused.status_code is None and "https://" in (refused.error or "")


def test_with_private_addresses_allowed_the_url_is_used_as_given() -> None:
    recorder = Recorder(200)
    sender = HttpWebhookSender(True, resolver=_resolving_to("10.0.0.1"), transport=httpx.MockTransport(recorder))
    assert _send(sender, "http://127.0.0.1:9/hook").delivered
    assert str(recorder.requests[0].url) == "http://127.0.0.1:9/hook"
