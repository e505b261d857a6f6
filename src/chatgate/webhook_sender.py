"""The webhook sender: one POST per attempt with httpx, to public addresses only.

The host is resolved here (in the event loop's resolver thread, never
blocking the loop); if any address it resolves to is not public (loopback,
private, link-local, multicast, reserved…) nothing is sent. Otherwise the
request goes to the address that was checked, with the name in ``Host`` and
in TLS (SNI and certificate check): a second lookup by the HTTP client could
answer differently (DNS rebinding). Redirects are not followed, proxies from
the environment are not used, and an attempt takes at most ``timeout`` seconds.
With ``CHATGATE_WEBHOOK_ALLOW_PRIVATE`` the URL is used as it is.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Mapping

import httpx

from chatgate.domain.webhooks import Outcome, is_public_address, url_problem

SEND_TIMEOUT_SECONDS = 10.0
MAX_ERROR_CHARS = 300


class Refused(Exception):
    """Nothing was sent: the destination is not allowed, or cannot be found."""


# host, port -> the addresses it resolves to.
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve(host: str, port: int) -> list[str]:
    """The addresses of ``host``, from the loop's resolver (a thread: the loop never waits on DNS)."""
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise Refused(f"cannot resolve {host}: {exc.strerror or exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in found))


class HttpWebhookSender:
    def __init__(
        self,
        allow_private: bool,
        timeout: float = SEND_TIMEOUT_SECONDS,
        *,
        resolver: Resolver = resolve,
        transport: httpx.AsyncBaseTransport | None = None,  # tests
    ) -> None:
        self.allow_private = allow_private
        self.timeout = timeout
        self._resolve = resolver
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._client_ready = asyncio.Lock()

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> Outcome:
        try:
            async with asyncio.timeout(self.timeout):
                return await self._send(url, body, headers)
        except TimeoutError:
            return Outcome(None, f"no answer within {self.timeout:g} s")
        except Refused as refusal:
            return Outcome(None, str(refusal))
        except Exception as exc:  # httpx.HTTPError, OSError, httpx.InvalidURL…: a failed attempt, with its reason
            return Outcome(None, _describe(exc))

    async def _send(self, url: str, body: bytes, headers: Mapping[str, str]) -> Outcome:
        target = httpx.URL(url)
        sent_headers = dict(headers)
        extensions: dict[str, object] = {}
        if not self.allow_private:
            problem = url_problem(url, allow_private=False)
            if problem is not None:
                raise Refused(f"refused: the URL {problem}")
            host = target.raw_host.decode("ascii")
            address = await self._public_address(host, target.port or 443)
            sent_headers["Host"] = target.netloc.decode("ascii")
            extensions["sni_hostname"] = host
            target = target.copy_with(host=address)
        client = await self._http()
        async with client.stream("POST", target, content=body, headers=sent_headers, extensions=extensions) as answer:
            code = answer.status_code
        if 200 <= code < 300:
            return Outcome(code)
        if 300 <= code < 400:
            return Outcome(code, f"HTTP {code}: redirects are not followed")
        return Outcome(code, f"HTTP {code}")

    async def _public_address(self, host: str, port: int) -> str:
        """The address to connect to: the first one ``host`` resolves to, if every one of them is public."""
        addresses = await self._resolve(host, port)
        if not addresses:
            raise Refused(f"cannot resolve {host}: no address")
        for address in addresses:
            if not is_public_address(ipaddress.ip_address(address.split("%", 1)[0])):
                raise Refused(
                    f"refused: {host} resolves to {address}, which is not a public address (loopback, private,"
                    " link-local, multicast or reserved); CHATGATE_WEBHOOK_ALLOW_PRIVATE=1 allows it"
                )
        return addresses[0]

    async def _http(self) -> httpx.AsyncClient:
        async with self._client_ready:
            if self._client is None:
                # Loading the CA bundle takes tens of milliseconds: not on the loop.
                context = await asyncio.to_thread(httpx.create_ssl_context)
                self._client = httpx.AsyncClient(
                    verify=context,
                    follow_redirects=False,
                    trust_env=False,
                    timeout=httpx.Timeout(self.timeout),
                    limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
                    transport=self._transport,
                )
            return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        text = f"connection failed: {text}"
    elif isinstance(exc, httpx.TimeoutException):
        text = f"timed out: {text}"
    else:
        text = f"{type(exc).__name__}: {text}"
    return text[:MAX_ERROR_CHARS]
