"""Every route in the OpenAPI document, fed junk: never a 5xx, never a change for a refused request."""

from __future__ import annotations

import itertools

import httpx

from conftest import Db, Project

JUNK_BODIES: list[object] = [
    None,
    {},
    [],
    "text",
    12,
    {"email": None, "password": None, "name": None, "settings": None},
    {"email": 5, "password": ["x"], "firstname": {"a": 1}, "lastname": True},
    {"id_project": "x" * 70, "externalAuthCode": 7, "jwtToken": None, "anonymous_token": 5},
    {"externalAuthCode": "a.b.c", "jwtToken": "....", "anonymous_token": "not-a-token"},
    {"name": "k", "roles": ["org.admin"], "expires_in_days": 10**30},
    {"settings": {"seat_limit": 10**30, "accepted_audiences": [None]}},
    {"settings": {"auth_methods": []}},
    {"email": "é@ü.example", "password": "p" * 1000, "role": "god"},
]
JUNK_REFS = ["000000000000000000000000", "%2e%2e", "a" * 300, "' OR 1=1 --"]


def test_no_route_answers_5xx_to_junk(api: httpx.Client, project: Project, db: Db) -> None:
    spec = api.get("/openapi.json").json()
    session = {"Authorization": project.owner.token}
    end_user = api.post("/v1/auth/signinAnonymously", json={"id_project": project.id}).json()["token"]
    headers_options = [{}, session, {"Authorization": end_user}, {"Authorization": "JWT x.y.z"}]
    identified_before = db.count("end_users", "anonymous = :f", f=False)
    seen = 0
    for path, operations in spec["paths"].items():
        for method in operations:
            for ref in [project.id, *JUNK_REFS]:
                url = path.replace("{pid}", ref).replace("{key_id}", ref).replace("{user_ref}", ref)
                for body, headers in itertools.product(JUNK_BODIES, headers_options):
                    kwargs: dict[str, object] = {"headers": headers}
                    if method in ("post", "patch") and body is not None:
                        kwargs["json"] = body
                    r = api.request(method.upper(), url, **kwargs)  # type: ignore[arg-type]
                    seen += 1
                    assert r.status_code < 500, (method, url, body, headers, r.text)
                    if path.startswith("/v1/"):
                        assert r.headers["content-type"].startswith("application/json"), (method, url)
    assert seen > 1000
    # No junk is a valid identified sign-in: no identified user may appear.
    assert db.count("end_users", "anonymous = :f", f=False) == identified_before
