"""Fuzzing every operation in ``/openapi.json`` over real HTTP: no answer may be a 5xx.

Two tests, each run against SQLite and PostgreSQL (the ``server`` fixture):

``test_fuzzed_requests_never_answer_5xx``
    Property-based. schemathesis reads the running server's OpenAPI document and
    generates, for every operation, requests that follow it and requests that
    break it (its positive and negative modes). Hypothesis then draws what the
    document does not say: who sends the request (nobody, the owner of a real
    project, an anonymous visitor of it, an API key, another project's owner, a
    customer token, a garbage ``Authorization``), which ``{pid}``/``{key_id}``/
    ``{user_ref}`` (mostly real ones, else everything is a 404), and one change
    beyond the schema: an adversarial query value, body field, whole body,
    content type, ``anonymous_token``, or a customer token HS256-signed with the
    project's real secret whose claims carry adversarial values. A failure is
    shrunk by Hypothesis to a small example.

``test_adversarial_inputs_never_answer_5xx``
    A deterministic sweep, so the values that matter are sent on every run, not
    only when the dice allow: from a valid request for each operation, each
    query parameter, path parameter and body field in turn takes each value of
    ``NASTY_TEXT``/``NASTY_SEGMENTS``/``NASTY_JSON`` (``limit=²``, ``①``, a
    5,000-digit number, ``1e3``, ``1e400``, ``10**400``, ``"\\u0000"``, lone
    surrogates ``"\\ud800"``, arrays nested 1,000 deep …, written as raw JSON
    bytes); each customer-token claim and header member does the same inside a
    correctly signed token; then whole bodies, content types and
    ``Authorization`` values. Every distinct 5xx (by the server's traceback) is
    listed with its smallest request.

A failure shows the method, the path, the exact request (URL, headers, body),
the answer, and what the server wrote to its log meanwhile (the traceback).

``CHATGATE_FUZZ_EXAMPLES`` (default 25) is the number of Hypothesis examples per
operation; ``CHATGATE_FUZZ_SEED`` fixes the seed, so CI runs are reproducible.
``CHATGATE_FUZZ_LOG=path`` appends every 5xx seen, also while Hypothesis
shrinks, to ``path`` as JSON lines.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import strategies as st

from conftest import PASSWORD, Project, Server, Staff, make_project, sign_up_staff, unique_email
from jwt_tools import now, raw_token

EXAMPLES = int(os.environ.get("CHATGATE_FUZZ_EXAMPLES", "25"))
SEED = int(os.environ.get("CHATGATE_FUZZ_SEED", "20240611"))
FUZZ_LOG = os.environ.get("CHATGATE_FUZZ_LOG")

pytestmark = pytest.mark.slow


# -- adversarial values ------------------------------------------------------------


def abbreviate(data: bytes | str, limit: int = 1200) -> str:
    """A long value made readable: a run of one short unit becomes ``⟨unit*N⟩``; the rest is cut at ``limit``."""
    text = data.decode("utf-8", "backslashreplace") if isinstance(data, bytes) else data
    text = re.sub(
        r"(.{1,8}?)\1{11,}", lambda m: f"⟨{m.group(1)}*{len(m.group(0)) // len(m.group(1))}⟩", text, flags=re.S
    )
    return text if len(text) <= limit else f"{text[:limit]}… [{len(data)} in all]"


class Raw:
    """JSON text spliced into a document as written: what ``json.dumps`` cannot or will not write."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({abbreviate(self.text, 80)!r})"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))


class Blob(bytes):
    """A whole request body, shown shortened in Hypothesis' report."""

    def __repr__(self) -> str:
        return f"Blob({abbreviate(bytes(self), 80)!r})"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))


class Text(str):
    """A query value or path segment, shown shortened; ``raw`` ones go on the wire as written (percent-encoded)."""

    raw = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({abbreviate(str(self), 80)!r})"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))


class RawText(Text):
    raw = True


def nested(opening: str, closing: str, depth: int, core: str = "1") -> Raw:
    return Raw(opening * depth + core + closing * depth)


#: JSON values past what the schema allows, for body fields and token claims.
NASTY_JSON: list[Any] = [
    Raw("1e400"),
    Raw("-1e400"),
    Raw("1" + "0" * 400),  # 10**400
    Raw("-1" + "0" * 400),
    Raw("9" * 5000),
    Raw("1E999999999"),
    Raw("1e-400"),
    Raw("-0"),
    Raw("1.0"),
    2**53 + 1,
    2**63,
    -(2**63) - 1,
    2**64,
    1e308,
    1.5,
    -1,
    0,
    True,
    None,
    Raw('"\\u0000"'),
    Raw('"a\\u0000b@x.io"'),
    Raw('"\\ud800"'),
    Raw('"\\ud800@x.io"'),
    Raw('"\\udfff\\ud800"'),
    Raw('"\\uffff"'),
    "",
    " ",
    "é@ü.example",
    "a@b",
    "ANN@EXAMPLE.COM ",
    "\u202eevil",
    Raw('"' + "😀" * 300 + '"'),
    Raw('"' + "x" * 5000 + '"'),
    Raw('"' + "x" * 70_000 + '"'),
    "' OR 1=1 --",
    "../../etc/passwd",
    "NaN",
    [],
    {},
    [None],
    {"$gt": ""},
    nested("[", "]", 1000),
    nested('{"a":', "}", 1000),
    nested("[", "]", 20, ""),
    Raw("[" * 100_000),
    Raw("NaN"),
    Raw("Infinity"),
    Raw("-Infinity"),
]

#: Query values.
NASTY_TEXT: list[Text] = [
    Text(value)
    for value in [
        "²",
        "①",
        "-1",
        "0",
        "1e3",
        "1" * 5000,
        "9" * 20,
        "1.5",
        " 1",
        "+1",
        "0x10",
        "\u0661\u0662",  # ARABIC-INDIC 12
        "\U0001d7d9",  # MATHEMATICAL DOUBLE-STRUCK DIGIT ONE
        "\u216b",  # ROMAN NUMERAL TWELVE
        "1_000",
        "",
        "null",
        "\u0000",
        "a\u0000b",
        "%00",
        "'; DROP TABLE end_users; --",
        "x" * 10_000,
        "é",
        "😀",
        "Infinity",
        "NaN",
        "[]",
    ]
] + [RawText(value) for value in ["%ff", "%ED%A0%80", "%C0%AF", "1%00", "%F0%9D%9F%99"]]

#: Path segments for ``{pid}``, ``{key_id}`` and ``{user_ref}``, besides the real ones.
NASTY_SEGMENTS: list[Text] = [
    Text(value)
    for value in ["000000000000000000000000", "a" * 300, "a" * 5000, "²", "①", "' OR 1=1 --", "\u0000", " ", "é"]
] + [RawText(value) for value in ["%ff", "%ED%A0%80", "%00", "%2e%2e", "%2F"]]

#: Whole request bodies.
NASTY_BODIES: list[Blob] = [
    Blob(body)
    for body in [
        b"",
        b"{",
        b"null",
        b"[]",
        b'"x"',
        b"1e400",
        b"NaN",
        b"\xff\xfe{}",
        b"\xef\xbb\xbf{}",
        b'{"a":1,"a":2}',
        b'{"email":"\\ud800@x.io","password":"a sturdy passphrase 42"}',
        b'{"email":"a\\u0000b@x.io","password":"a sturdy passphrase 42"}',
        b'{"email":"ann@example.com","password":"' + b"\\ud800" * 8 + b'"}',
        b'{"id_project":"\\ud800"}',
        b'{"id_project":"\\u0000"}',
        b'{"externalAuthCode":"\\ud800.\\ud800.\\ud800"}',
        b'{"jwtToken":"a.b.\\u0000"}',
        b'{"settings":{"seat_limit":1e400}}',
        b'{"settings":{"seat_limit":1' + b"0" * 400 + b"}}",
        b'{"name":"k","roles":["org.admin"],"expires_in_days":1e400}',
        b'{"name":"k","roles":["org.admin"],"expires_in_days":' + b"9" * 5000 + b"}",
        b"[" * 1000 + b"]" * 1000,
        b'{"a":' * 1000 + b"1" + b"}" * 1000,
        b'{"settings":' + b"[" * 1000 + b"]" * 1000 + b"}",
        b"[" * 60_000,
        b'{"email":"' + b"\\u0000" * 2000 + b'"}',
    ]
]

CONTENT_TYPES: list[str | None] = [
    "application/json; charset=latin-1",
    "application/json; charset=utf-16",
    "application/json; charset=\u00e9",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/json, text/plain",
    None,
]

GARBAGE_AUTH: list[str] = [
    "",
    "JWT",
    "Bearer",
    "JWT x.y.z",
    "JWT ....",
    "JWT " + "a" * 9000,
    "Basic YTpi",
    "Bearer cgk_x_y",
    "Bearer cgk_" + "a" * 300,
    "JWT \u00e9.\u00e9.\u00e9",
    "JWT \u0100\u0101",
    "JWT eyJhbGciOiJub25lIn0.eyJleHAiOjF9.",
    "jwt eyJ9.eyJ9.eyJ9",
    "JWT JWT JWT",
]

CLAIM_NAMES = [
    "exp",
    "iat",
    "nbf",
    "jti",
    "aud",
    "sub",
    "iss",
    "_id",
    "id",
    "user",
    "email",
    "externalId",
    "firstname",
    "lastname",
    "name",
    "metadata",
    "plan",
]
USER_CLAIM_NAMES = ["id", "email", "firstname", "lastname", "externalId", "plan"]
HEADER_NAMES = ["alg", "typ", "kid", "crit", "b64", "jku", "x5u", "jwk", "cty", "zip", "enc"]
HEADER_VALUES: list[Any] = [
    None,
    "",
    "none",
    "HS512",
    ["b64"],
    {"k": 1},
    Raw("1" + "0" * 400),
    Raw("1e400"),
    Raw('"\\ud800"'),
    Raw('"\\u0000"'),
    nested("[", "]", 1000),
]
SETTING_NAMES = [
    "seat_limit",
    "auth_methods",
    "require_exp",
    "max_token_age_seconds",
    "leeway_seconds",
    "accepted_audiences",
]

#: Routes that verify a customer token, and the dialect of its claims.
TOKEN_ROUTES = {
    "/v1/projects/{pid}/auth/external-code": "external",
    "/v1/projects/{pid}/auth/customer/login": "customer",
    "/v1/auth/signinWithCustomToken": "custom",
}


def dumps(value: Any) -> bytes:
    """JSON bytes of ``value``, with each ``Raw`` spliced in as written."""
    marker = f"@@raw-{secrets.token_hex(6)}-"
    raws: list[str] = []

    def swap(v: Any) -> Any:
        if isinstance(v, Raw):
            raws.append(v.text)
            return f"{marker}{len(raws) - 1}@@"
        if isinstance(v, dict):
            return {str(k): swap(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [swap(x) for x in v]
        return v

    text = json.dumps(swap(value))
    for index, raw in enumerate(raws):
        text = text.replace(f'"{marker}{index}@@"', raw, 1)
    return text.encode("utf-8", "surrogatepass")


def json_values() -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        st.sampled_from(NASTY_JSON),
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),
        st.text(max_size=40),
    )
    return st.recursive(
        leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    )


def encode(value: Any) -> str:
    """A query value or path segment for the URL: percent-encoded UTF-8, or as written for ``RawText``."""
    if isinstance(value, Text) and value.raw:
        return str(value)
    return quote(str(value).encode("utf-8", "surrogatepass"), safe="")


# -- the fuzzed world ----------------------------------------------------------------


@dataclass
class Request:
    method: str
    template: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    notes: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    request: Request
    status: int | None  # None: no answer (the connection dropped or timed out)
    text: str
    log: str
    unsendable: bool = False  # the HTTP client refused to write it (e.g. a newline in a header): not the server's doing

    @property
    def failed(self) -> bool:
        return not self.unsendable and (self.status is None or self.status >= 500)

    def signature(self) -> str:
        """What makes two failures the same bug: the exception, and the function of Chatgate's that raised it."""
        frames = re.findall(r'File "[^"]*?(chatgate/[^"]+)", line \d+, in (\w+)', self.log)
        errors = re.findall(r"^\s*((?:\w+\.)*\w+(?:Error|Exception|Exit|Interrupt))\b:?(.*)$", self.log, flags=re.M)
        if not frames:
            return f"{self.status} with no traceback in the log: {abbreviate(self.text, 80)}"
        kind, message = errors[-1] if errors else ("?", "")
        # The message's first words, quoted values and numbers masked: "maximum recursion depth exceeded", …
        message = " ".join(re.sub(r"\d+", "N", re.sub(r"(?<!\w)('[^']*'|\"[^\"]*\")", "…", message)).split()[:4])
        return f"{kind} ({message}) in {frames[-1][0]}:{frames[-1][1]}"

    def size(self) -> int:
        return len(self.request.url) + len(self.request.body or b"")

    def describe(self) -> str:
        r = self.request
        headers = {k: abbreviate(v, 200) for k, v in r.headers.items()}
        answer = "no answer (connection dropped or timed out)" if self.status is None else f"{self.status}"
        return "\n".join(
            [
                f"{r.method} {r.template} answered {answer}",
                f"  varied:   {'; '.join(r.notes)}",
                f"  request:  {r.method} {abbreviate(r.url, 600)}",
                f"  headers:  {headers}",
                f"  body:     {'(none)' if r.body is None else abbreviate(r.body)}",
                f"  response: {abbreviate(self.text, 600)}",
                "  server log meanwhile:",
                *("    " + line for line in (self.log.strip() or "(nothing)").splitlines()[-40:]),
            ]
        )


@dataclass
class Target:
    """A server with a real project, its owner, a visitor, an API key and users, and how to keep them usable."""

    server: Server
    project: Project
    foreign: Project
    visitor: str  # an anonymous session of ``project``, without ``JWT ``
    api_key: str
    key_id: str
    email_user: str
    member_email: str
    user_refs: list[str]
    cursors: list[str]
    settings: dict[str, dict[str, Any]]  # each project's settings as they were at the start, by id
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.server.url, timeout=30)

    @property
    def owner(self) -> Staff:
        return self.project.owner

    def fresh_visitor(self, project: Project | None = None) -> str:
        """A new anonymous session token (without ``JWT ``)."""
        r = self.http.post("/v1/auth/signinAnonymously", json={"id_project": (project or self.project).id})
        assert r.status_code == 200, r.text
        return str(r.json()["token"]).removeprefix("JWT ")

    def fresh_staff_session(self, staff: Staff) -> str:
        """A new session of ``staff`` (``JWT …``), to be ended by a logout without ending the shared one."""
        r = self.http.post("/v1/auth/signin", json={"email": staff.email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return str(r.json()["token"])

    def fresh_key_id(self) -> str:
        r = self.http.post(
            f"/v1/projects/{self.project.id}/apikeys",
            json={"name": "doomed", "roles": ["org.user"]},
            headers=self.owner.auth,
        )
        assert r.status_code in (200, 201), r.text
        return str(r.json()["id"])

    def audience(self) -> str:
        return f"{self.server.url}/projects/{self.project.id}"

    def valid_claims(self, dialect: str) -> dict[str, Any]:
        user = f"fuzz-{secrets.token_hex(4)}"
        if dialect == "external":
            return {"user": {"id": user, "email": f"{user}@example.com", "firstname": "Ann"}, "exp": now() + 600}
        if dialect == "customer":
            return {"externalId": user, "email": f"{user}@example.com", "iat": now()}
        return {"_id": user, "sub": "userexternal", "aud": self.audience(), "exp": now() + 600}

    def token(self, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
        """A customer token signed with the project's current secret, claims written byte for byte."""
        header = {"alg": "HS256", "typ": "JWT", **(header or {})}
        return raw_token(dumps(header).decode("utf-8", "surrogatepass"), dumps(claims), self.project.secret)

    def send(self, request: Request) -> Outcome:
        """Send; keep the world usable; on a 5xx (or no answer) capture what the server logged."""
        log = self.server.log
        start = log.stat().st_size
        headers = {k: v.encode("utf-8", "surrogatepass") if not v.isascii() else v for k, v in request.headers.items()}
        try:
            response = self.http.request(request.method, request.url, headers=headers, content=request.body)
            status, text = response.status_code, response.text
        except (httpx.LocalProtocolError, httpx.InvalidURL, UnicodeError) as exc:
            return Outcome(request, None, repr(exc), "", unsendable=True)
        except httpx.TransportError as exc:
            status, text = None, repr(exc)
        outcome = Outcome(request, status, text, "")
        if status == 200 and request.template == "/v1/{pid}/keys/generate" and self.project.id in request.url:
            self.project.secret = response.json()["jwtSecret"]
        if status == 200 and request.method == "PATCH" and request.template == "/v1/projects/{pid}":
            for project in (self.project, self.foreign):
                if project.id in request.url:
                    self.restore_project(project)
        if outcome.failed:
            settle(log, start)
            with log.open("rb") as f:
                f.seek(start)
                outcome.log = f.read().decode("utf-8", "replace")
            if FUZZ_LOG:
                with open(FUZZ_LOG, "a") as out:
                    record = {
                        "signature": outcome.signature(),
                        "method": request.method,
                        "path": request.template,
                        "url": request.url,
                        "headers": request.headers,
                        "body": None if request.body is None else request.body.decode("utf-8", "backslashreplace"),
                        "status": status,
                        "response": text[:2000],
                        "log": outcome.log[-8000:],
                        "notes": request.notes,
                    }
                    out.write(json.dumps(record) + "\n")
        return outcome

    def restore_project(self, project: Project) -> None:
        """Undo a settings change that succeeded, so later requests still reach every sign-in path."""
        r = self.http.patch(
            f"/v1/projects/{project.id}",
            json={"name": "Support", "settings": self.settings[project.id]},
            headers=project.owner.auth,
        )
        assert r.status_code == 200, f"could not restore the project's settings: {r.text}"


def settle(log: Path, start: int) -> None:
    """Wait (at most half a second) until the server has finished writing to its log after ``start``."""
    size = start
    for _ in range(25):
        time.sleep(0.02)
        grown = log.stat().st_size
        if grown == size and size > start:
            return
        size = grown


@pytest.fixture(scope="session")
def fuzz_target(server: Server) -> Iterator[Target]:
    with httpx.Client(base_url=server.url, timeout=30) as api:
        owner = sign_up_staff(api, "fuzz-owner")
        project = make_project(api, owner)
        foreign = make_project(api, sign_up_staff(api, "fuzz-foreign"))
        pid = project.id
        visitor = api.post("/v1/auth/signinAnonymously", json={"id_project": pid}).json()["token"].removeprefix("JWT ")
        user_refs: list[str] = []
        for n in range(3):
            claims = {"user": {"id": f"fuzz-{n}", "email": f"fuzz-{n}@example.com"}}
            code = raw_token({"alg": "HS256", "typ": "JWT"}, claims, project.secret)
            r = api.post(f"/v1/projects/{pid}/auth/external-code", json={"externalAuthCode": code})
            assert r.status_code == 200, r.text
            user_refs += [r.json()["user"]["_id"], f"fuzz-{n}", f"fuzz-{n}@example.com"]
        member_email = sign_up_staff(api, "fuzz-member").email
        email_user = "fuzz-email@example.com"
        api.post(f"/v1/projects/{pid}/auth/email/signup", json={"email": email_user, "password": PASSWORD})
        r = api.post(
            f"/v1/projects/{pid}/apikeys",
            json={"name": "fuzz", "roles": ["org.admin", "org.user"], "expires_in_days": None},
            headers=owner.auth,
        )
        assert r.status_code in (200, 201), r.text
        api_key, key_id = r.json()["key"], r.json()["id"]
        cursors = []
        for route in ("users", "audit"):
            r = api.get(f"/v1/projects/{pid}/{route}", params={"limit": 1}, headers=owner.auth)
            assert r.status_code == 200, r.text
            cursors.append(r.json()["next_cursor"])
        settings = {}
        for each in (project, foreign):
            r = api.get(f"/v1/projects/{each.id}", headers=each.owner.auth)
            assert r.status_code == 200, r.text
            settings[each.id] = r.json()["settings"]
    target = Target(
        server,
        project,
        foreign,
        visitor,
        api_key,
        key_id,
        email_user,
        member_email,
        user_refs,
        [c for c in cursors if c],
        settings,
    )
    yield target
    target.http.close()


@pytest.fixture(scope="session")
def fuzz_schema(server: Server) -> schemathesis.BaseSchema:
    """The server's own OpenAPI document, as schemathesis reads it."""
    config = schemathesis.Config.from_dict({"cache": {"enabled": False}})
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json", config=config)


def operations_of(schema: schemathesis.BaseSchema) -> list[schemathesis.APIOperation]:
    operations = [result.ok() for result in schema.get_all_operations()]  # an Err is an unreadable document
    assert len(operations) >= 20, [op.label for op in operations]
    return operations


def security_of(operation: schemathesis.APIOperation) -> set[str]:
    return {name for requirement in operation.definition.raw.get("security", []) for name in requirement}


def body_schema(operation: schemathesis.APIOperation) -> dict[str, Any] | None:
    """The operation's JSON body schema from the document, with a top-level ``$ref`` resolved."""
    content = operation.definition.raw.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return None
    schema: dict[str, Any] = content["application/json"].get("schema", {})
    if "$ref" in schema:
        components = operation.schema.raw_schema.get("components", {}).get("schemas", {})
        schema = components.get(schema["$ref"].rsplit("/", 1)[-1], {})
    return schema


def real_values(t: Target, template: str) -> dict[str, Callable[[], Any]]:
    """Valid values for the body properties of ``template``, by name: what gets a request past validation."""
    if template == "/v1/auth/signin":
        email = t.owner.email
    elif template.endswith("/auth/email/signin"):
        email = t.email_user
    elif template.endswith("/members"):
        email = t.member_email
    else:
        email = unique_email("fuzz")
    return {
        "email": lambda: email,
        "password": lambda: PASSWORD,
        "firstname": lambda: "Ann",
        "lastname": lambda: "Lee",
        "name": lambda: "Support",
        "id_project": lambda: t.project.id,
        "externalAuthCode": lambda: t.token(t.valid_claims("external")),
        "jwtToken": lambda: t.token(t.valid_claims("customer")),
        "role": lambda: "admin",
        "roles": lambda: ["org.user"],
        "expires_in_days": lambda: 30,
        "settings": lambda: {"leeway_seconds": 30},
    }


# -- property-based: schemathesis cases plus Hypothesis draws -------------------------

WHO = ["staff", "staff", "staff", "none", "visitor", "api_key", "foreign_staff", "customer_token", "garbage"]
MUTATIONS = ["as_generated", "as_generated", "query", "field", "field", "body", "content_type", "token", "anonymous"]


def draw_request(target: Target, case: schemathesis.Case, data: st.DataObject) -> Request:
    """The schemathesis case, with who sends it, the ids it names, and one adversarial change drawn."""
    method, template = case.method.upper(), case.path
    notes: list[str] = []
    raw_segments: dict[str, str] = {}
    for name in list(case.path_parameters):
        kind = data.draw(st.sampled_from(["real", "real", "real", "real", "foreign", "generated", "nasty"]), name)
        notes.append(f"{name}={kind}")
        if kind == "real":
            if name == "pid":
                case.path_parameters[name] = target.project.id
            elif name == "key_id":
                case.path_parameters[name] = target.fresh_key_id()
            else:
                case.path_parameters[name] = data.draw(st.sampled_from(target.user_refs), name)
        elif kind == "foreign":
            case.path_parameters[name] = target.foreign.id
        elif kind == "nasty":
            segment = data.draw(st.sampled_from(NASTY_SEGMENTS), name)
            if segment.raw:
                placeholder = f"rawsegment{secrets.token_hex(4)}"
                raw_segments[placeholder] = str(segment)
                case.path_parameters[name] = placeholder
            else:
                case.path_parameters[name] = str(segment)

    who = data.draw(st.sampled_from(WHO), "who")
    notes.append(f"who={who}")
    dialect = TOKEN_ROUTES.get(template, "custom")
    auth: str | None = {
        "staff": target.owner.token,
        "visitor": f"JWT {target.visitor}",
        "api_key": f"Bearer {target.api_key}",
        "foreign_staff": target.foreign.owner.token,
    }.get(who)
    if template == "/v1/auth/logout" and who in ("staff", "visitor", "foreign_staff"):
        # A logout with a shared session would end it for every later example: log out a fresh one.
        auth = {
            "staff": lambda: target.fresh_staff_session(target.owner),
            "visitor": lambda: f"JWT {target.fresh_visitor()}",
            "foreign_staff": lambda: target.fresh_staff_session(target.foreign.owner),
        }[who]()
    elif who == "customer_token":
        auth = "JWT " + draw_token(target, dialect, data)
    elif who == "garbage":
        auth = data.draw(st.sampled_from(GARBAGE_AUTH) | st.text(max_size=40).map("JWT ".__add__), "auth")

    kwargs = case.as_transport_kwargs(base_url=target.server.url)
    url: str = kwargs["url"]
    for placeholder, raw in raw_segments.items():
        url = url.replace(placeholder, raw)
    headers = {str(k): str(v) for k, v in dict(kwargs.get("headers") or {}).items() if k.lower() != "authorization"}
    query = query_pairs(kwargs.get("params"))
    if "json" in kwargs:
        body: bytes | None = dumps(kwargs["json"])
    elif kwargs.get("data") is not None:
        data_ = kwargs["data"]
        body = data_ if isinstance(data_, bytes) else str(data_).encode("utf-8", "surrogatepass")
    else:
        body = None
    schema = body_schema(case.operation)
    document = dict(case.body) if isinstance(case.body, dict) else {}
    if schema is not None and isinstance(case.body, dict):
        # Half the time each property takes a real value (the project's id, a signed token, a fresh email …),
        # so requests get past validation to storage and answers, where the generated values alone rarely go.
        for name, make in real_values(target, template).items():
            if name in schema.get("properties", {}) and data.draw(st.booleans(), f"real {name}"):
                document[name] = make()
        if document != case.body:
            body = dumps(document)
            headers["Content-Type"] = "application/json"

    mutations = [*MUTATIONS, "token", "token", "token"] if template in TOKEN_ROUTES else MUTATIONS
    mutation = data.draw(st.sampled_from(mutations), "mutation")
    notes.append(f"mutation={mutation}")
    if mutation == "query":
        names = [p.name for p in case.operation.query] or ["limit"]
        name = data.draw(st.sampled_from([*names, "limit", "cursor"]), "param")
        values = st.sampled_from(NASTY_TEXT) | st.text(max_size=30).map(Text) | st.integers().map(str).map(Text)
        if target.cursors:
            values |= st.sampled_from([Text(c) for c in target.cursors] + [Text(c[:-2]) for c in target.cursors])
        value = data.draw(values, "value")
        repeat = data.draw(st.booleans(), "repeat")
        query = [(k, v) for k, v in query if k != name or repeat] + [(name, value)]
    elif mutation == "field" and schema is not None:
        properties = list(schema.get("properties", {}))
        key = data.draw(st.sampled_from([*properties, "x"]), "field")
        body = dumps({**document, key: data.draw(json_values(), "value")})
        headers["Content-Type"] = "application/json"
    elif mutation == "body" and method in ("POST", "PATCH", "DELETE"):
        body = data.draw(st.sampled_from(NASTY_BODIES) | json_values().map(dumps).map(Blob), "body")
        if method == "PATCH" and data.draw(st.booleans(), "settings instead"):
            settings = data.draw(st.dictionaries(st.sampled_from(SETTING_NAMES), json_values(), max_size=3), "settings")
            body = dumps({"settings": settings})
        headers["Content-Type"] = "application/json"
    elif mutation == "content_type" and body is not None:
        headers.pop("Content-Type", None)
        content_type = data.draw(st.sampled_from(CONTENT_TYPES), "content-type")
        if content_type is not None:
            headers["Content-Type"] = content_type
    elif mutation == "token" and template in TOKEN_ROUTES:
        token = draw_token(target, dialect, data)
        if dialect == "custom":
            auth = f"JWT {token}"
        else:
            body = dumps({"externalAuthCode" if dialect == "external" else "jwtToken": token})
            headers["Content-Type"] = "application/json"
    elif mutation == "anonymous" and schema is not None and "anonymous_token" in schema.get("properties", {}):
        kind = data.draw(st.sampled_from(["visitor", "foreign visitor", "staff", "junk"]), "anonymous_token")
        value: Any = {
            "visitor": target.fresh_visitor,
            "foreign visitor": lambda: target.fresh_visitor(target.foreign),
            "staff": lambda: target.owner.token.removeprefix("JWT "),
            "junk": lambda: data.draw(json_values(), "junk"),
        }[kind]()
        body = dumps({**document, "anonymous_token": value})
        headers["Content-Type"] = "application/json"

    if auth is not None:
        headers["Authorization"] = auth
    if body is not None and method == "GET":
        body = None
    if query:
        url = f"{url}?{'&'.join(f'{encode(k)}={encode(v)}' for k, v in query)}"
    return Request(method, template, url, headers, body, notes)


def query_pairs(params: Any) -> list[tuple[str, Any]]:
    """schemathesis' query (a dict, maybe with list values) as ordered pairs; ``None`` means absent."""
    if not params:
        return []
    if isinstance(params, str):
        return [(k, RawText(v)) for k, _, v in (part.partition("=") for part in params.split("&"))]
    pairs: list[tuple[str, Any]] = []
    for key, value in dict(params).items():
        for item in value if isinstance(value, list) else [value]:
            if item is not None:
                pairs.append((str(key), json.dumps(item) if isinstance(item, bool | dict) else item))
    return pairs


def draw_token(target: Target, dialect: str, data: st.DataObject) -> str:
    """A customer token signed with the project's secret, with drawn claims (and sometimes header members)."""
    claims = target.valid_claims(dialect)
    ids = st.sampled_from(["fuzz-0", "fuzz-new", "x" * 257]) | st.text(min_size=1, max_size=30)
    key = {"external": "user", "customer": "externalId"}.get(dialect, "_id")
    if dialect == "external":
        claims["user"]["id"] = data.draw(ids, "user.id")
        extra_user = data.draw(st.dictionaries(st.sampled_from(USER_CLAIM_NAMES), json_values(), max_size=2), "user")
        claims["user"].update(extra_user)
    else:
        claims[key] = data.draw(ids, key)
    extra = data.draw(
        st.dictionaries(st.sampled_from(CLAIM_NAMES) | st.text(max_size=8), json_values(), max_size=3), "claims"
    )
    header = {}
    if data.draw(st.integers(0, 3), "change header") == 0:
        header = data.draw(st.dictionaries(st.sampled_from(HEADER_NAMES), json_values(), max_size=2), "header")
    return target.token({**claims, **extra}, header)


def operation_seed(label: str) -> int:
    """A fixed seed per operation, so a run is reproducible and operations do not all draw alike."""
    return int.from_bytes(hashlib.blake2b(f"{SEED}:{label}".encode(), digest_size=8).digest(), "big")


def fuzz_operation(target: Target, operation: schemathesis.APIOperation) -> None:
    """Hypothesis over one operation; raises (after shrinking) on the first 5xx."""
    cases = st.one_of(
        operation.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE),
    )

    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=False,
        print_blob=False,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate, hypothesis.Phase.shrink],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.seed(operation_seed(operation.label))
    @hypothesis.given(case=cases, data=st.data())
    def run(case: schemathesis.Case, data: st.DataObject) -> None:
        outcome = target.send(draw_request(target, case, data))
        hypothesis.assume(not outcome.unsendable)
        if outcome.failed:
            raise AssertionError(outcome.describe())

    run()


def failure_text(exc: BaseException) -> str:
    """The assertion message (request, answer, server log) and Hypothesis' notes (the drawn values)."""
    if isinstance(exc, BaseExceptionGroup):
        return "\n\n".join(failure_text(inner) for inner in exc.exceptions)
    lines = "\n".join(dict.fromkeys(getattr(exc, "__notes__", []))).splitlines()
    noise = re.compile(r"^(Failing test case: run\(|    case=,|    data=,|\))$")  # Case prints as nothing
    notes = "\n".join(abbreviate(line, 300) for line in lines if not noise.match(line))
    head = str(exc) if isinstance(exc, AssertionError) else "".join(traceback.format_exception(exc))
    return f"{head}\n{notes}".strip()


def test_fuzzed_requests_never_answer_5xx(fuzz_schema: schemathesis.BaseSchema, fuzz_target: Target) -> None:
    failures: list[str] = []
    for operation in operations_of(fuzz_schema):
        try:
            fuzz_operation(fuzz_target, operation)
        except Exception as exc:
            failures.append(f"=== {operation.label}\n{failure_text(exc)}")
    if failures:
        pytest.fail(f"{len(failures)} operation(s) answered 5xx:\n\n" + "\n\n".join(failures), pytrace=False)


# -- the deterministic sweep ---------------------------------------------------------


@dataclass
class Baseline:
    """A valid request for one operation, from which the sweep changes one thing at a time."""

    target: Target
    operation: schemathesis.APIOperation
    path: dict[str, str] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return self.operation.method.upper()

    @property
    def template(self) -> str:
        return self.operation.path

    def auth(self) -> str | None:
        t, security = self.target, security_of(self.operation)
        if self.template == "/v1/auth/logout":
            return f"JWT {t.fresh_visitor()}"
        if "session" in security:
            return f"JWT {t.visitor}" if "/auth/" in self.template else t.owner.token
        if "customerToken" in security:
            return "JWT " + t.token(t.valid_claims("custom"))
        if "apiKey" in security:
            return f"Bearer {t.api_key}"
        return None

    def body(self) -> dict[str, Any] | None:
        """A valid body: each documented property that has a sensible value here."""
        schema = body_schema(self.operation)
        if schema is None:
            return None
        values = real_values(self.target, self.template)
        return {name: values[name]() for name in schema.get("properties", {}) if name in values}

    def request(
        self,
        note: str,
        *,
        path: dict[str, Any] | None = None,
        query: list[tuple[str, Any]] | None = None,
        auth: Any = "baseline",
        body: Any = "baseline",
        content_type: str | None = "application/json",
    ) -> Request:
        segments = {**self.path, **(path or {})}
        url = self.template
        for name, value in segments.items():
            url = url.replace(f"{{{name}}}", encode(value))
        if query:
            url += "?" + "&".join(f"{encode(k)}={encode(v)}" for k, v in query)
        headers: dict[str, str] = {}
        authorization = self.auth() if auth == "baseline" else auth
        if authorization is not None:
            headers["Authorization"] = authorization
        if isinstance(body, str) and body == "baseline":
            document = self.body()
            content: bytes | None = None if document is None else dumps(document)
        elif isinstance(body, bytes):
            content = body
        else:
            content = None if body is None else dumps(body)
        if content is not None and content_type is not None:
            headers["Content-Type"] = content_type
        return Request(self.method, self.template, url, headers, content, [note])


def baseline_for(target: Target, operation: schemathesis.APIOperation) -> Baseline:
    refs = {"pid": lambda: target.project.id, "key_id": target.fresh_key_id, "user_ref": lambda: target.user_refs[0]}
    path = {p.name: refs[p.name]() if p.name in refs else "x" for p in operation.path_parameters}
    return Baseline(target, operation, path)


def sweep(target: Target, operation: schemathesis.APIOperation) -> Iterator[Request]:
    """Every adversarial request for one operation, each one change away from a valid request."""
    base = baseline_for(target, operation)
    method, template = base.method, base.template
    yield base.request("baseline")

    # Query parameters: each value, alone and repeated, with a staff and an end-user session.
    names = [p.name for p in operation.query]
    sessions = [base.auth()]
    if "session" in security_of(operation):
        sessions = [target.owner.token, f"JWT {target.visitor}"]
    for name in names:
        extra = [Text(c) for c in target.cursors] + [Text(c[:-2] + "~~") for c in target.cursors]
        for value in [*NASTY_TEXT, *(extra if name == "cursor" else [])]:
            for auth in sessions:
                yield base.request(f"query {name}={value!r}", query=[(name, value)], auth=auth)
        yield base.request(f"query {name} twice", query=[(name, Text("1")), (name, Text("²"))])

    # Path parameters.
    for name in base.path:
        for segment in [*NASTY_SEGMENTS, Text(target.foreign.id)]:
            yield base.request(f"path {name}={segment!r}", path={name: segment})

    # Body fields, one at a time, from a valid body.
    schema = body_schema(operation)
    if schema is not None:
        properties = list(schema.get("properties", {}))
        for name in [*properties, "x"]:
            for value in NASTY_JSON:
                document = base.body() or {}
                yield base.request(f"field {name}={value!r}", body={**document, name: value})
        if "anonymous_token" in properties:
            for kind, value in [
                ("visitor", target.fresh_visitor),
                ("foreign visitor", lambda: target.fresh_visitor(target.foreign)),
                ("staff session", lambda: target.owner.token.removeprefix("JWT ")),
                ("JWT-prefixed visitor", lambda: f"JWT {target.fresh_visitor()}"),
            ]:
                yield base.request(f"anonymous_token={kind}", body={**(base.body() or {}), "anonymous_token": value()})
        if template == "/v1/projects/{pid}" and method == "PATCH":
            for setting in SETTING_NAMES:
                for value in NASTY_JSON:
                    yield base.request(f"settings.{setting}={value!r}", body={"settings": {setting: value}})
            for method_name in ["anonymous", "email", "external_jwt", "\u0000"]:
                for value in NASTY_JSON[:20]:
                    body = {"settings": {"auth_methods": {method_name: value}}}
                    yield base.request(f"settings.auth_methods.{method_name}={value!r}", body=body)
        for content_type in CONTENT_TYPES:
            yield base.request(f"content-type {content_type!r}", content_type=content_type)

    # Whole bodies, on every operation that takes one or might read one.
    if method in ("POST", "PATCH", "DELETE"):
        for blob in NASTY_BODIES:
            yield base.request(f"body {blob!r}", body=bytes(blob))

    # Who sends it (a logout gets fresh sessions: ending the shared ones would change every later request).
    logout = template == "/v1/auth/logout"
    for who, auth in [
        *((repr(abbreviate(value, 40)), value) for value in GARBAGE_AUTH),
        ("nobody", None),
        ("owner", target.fresh_staff_session(target.owner) if logout else target.owner.token),
        ("visitor", f"JWT {target.fresh_visitor() if logout else target.visitor}"),
        ("API key", f"Bearer {target.api_key}"),
        ("foreign owner", target.fresh_staff_session(target.foreign.owner) if logout else target.foreign.owner.token),
    ]:
        yield base.request(f"Authorization: {who}", auth=auth)

    # Customer tokens, correctly signed, one odd claim or header member at a time.
    dialect = TOKEN_ROUTES.get(template)
    if dialect is not None:
        for claim in CLAIM_NAMES:
            for value in NASTY_JSON:
                note = f"claim {claim}={value!r}"
                yield token_request(base, dialect, note, lambda c, k=claim, v=value: c.update({k: v}))
        if dialect == "external":
            for claim in USER_CLAIM_NAMES:
                for value in NASTY_JSON:
                    note = f"claim user.{claim}={value!r}"
                    yield token_request(base, dialect, note, lambda c, k=claim, v=value: c["user"].update({k: v}))
        for member in HEADER_NAMES:
            for value in HEADER_VALUES:
                yield token_request(base, dialect, f"header {member}={value!r}", header={member: value})


def token_request(
    base: Baseline,
    dialect: str,
    note: str,
    change: Callable[[dict[str, Any]], None] | None = None,
    header: dict[str, Any] | None = None,
) -> Request:
    t = base.target
    claims = t.valid_claims(dialect)
    if change is not None:
        change(claims)
    token = t.token(claims, header)
    if dialect == "custom":
        return base.request(note, auth=f"JWT {token}")
    document = {**(base.body() or {}), "externalAuthCode" if dialect == "external" else "jwtToken": token}
    return base.request(note, body=document)


def test_adversarial_inputs_never_answer_5xx(fuzz_schema: schemathesis.BaseSchema, fuzz_target: Target) -> None:
    found: dict[str, list[Outcome]] = {}
    sent = 0
    for operation in operations_of(fuzz_schema):
        for request in sweep(fuzz_target, operation):
            outcome = fuzz_target.send(request)
            sent += not outcome.unsendable
            if outcome.failed:
                found.setdefault(outcome.signature(), []).append(outcome)
    assert sent > 3000
    if found:
        report = []
        for signature, outcomes in found.items():
            operations = dict.fromkeys(f"{o.request.method} {o.request.template}" for o in outcomes)
            triggers = dict.fromkeys(abbreviate(o.request.notes[0], 60) for o in outcomes)
            report.append(
                f"=== {signature}: {len(outcomes)} request(s)\n"
                f"  operations: {', '.join(operations)}\n"
                f"  triggers:   {'; '.join(list(triggers)[:12])}{' …' if len(triggers) > 12 else ''}\n"
                f"  smallest:   {min(outcomes, key=Outcome.size).describe()}"
            )
        pytest.fail(f"{len(found)} distinct 5xx in {sent} requests:\n\n" + "\n\n".join(report), pytrace=False)
