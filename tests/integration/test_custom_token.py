"""Contract §4.2: Tiledesk's signinWithCustomToken."""

from __future__ import annotations

from typing import Any

import httpx

from conftest import Db, Project, Server
from jwt_tools import hs256


def aud(server: Server, project: Project) -> str:
    return f"{server.url}/projects/{project.id}"


def sign_in(api: httpx.Client, token: str, scheme: str = "JWT", **body: Any) -> httpx.Response:
    return api.post("/v1/auth/signinWithCustomToken", headers={"Authorization": f"{scheme} {token}"}, json=body or None)


def test_first_sight_creates_and_other_claims_become_metadata(
    api: httpx.Client, server: Server, project: Project, db: Db
) -> None:
    claims = {
        "_id": "123",
        "firstname": "andrea",
        "lastname": "leo",
        "email": "email2@email.com",
        "customAttr": "c1",
        "sub": "userexternal",
        "aud": aud(server, project),
    }
    r = sign_in(api, hs256(project.secret, claims))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and body["token"].startswith("JWT ")
    user = body["user"]
    assert user["externalId"] == "123"
    assert user["fullName"] == "andrea leo"
    assert user["email"] == "email2@email.com"
    assert user["createdVia"] == "custom_token"
    assert user["metadata"] == {"customAttr": "c1"}
    again = sign_in(api, hs256(project.secret, claims), scheme="jwt").json()
    assert again["user"]["_id"] == user["_id"]
    assert db.count("end_users", "project_id = :p", p=project.id) == 1


def test_accepted_audience_routes_a_migrating_customer(api: httpx.Client, project: Project) -> None:
    # The customer's backend keeps signing for its old Tiledesk project id, which no Chatgate project has.
    tiledesk_aud = "https://tiledesk.com/projects/5c81593adf767b0017d1aa68"
    claims = {"_id": "mig", "sub": "userexternal", "aud": tiledesk_aud}
    r = sign_in(api, hs256(project.secret, claims))
    assert r.status_code == 401 and r.json()["error"]["reason"] == "wrong_audience"
    api.patch(
        f"/v1/projects/{project.id}",
        json={"settings": {"accepted_audiences": [tiledesk_aud]}},
        headers=project.owner.auth,
    )
    assert sign_in(api, hs256(project.secret, claims)).status_code == 200


def test_claim_rules(api: httpx.Client, server: Server, project: Project, db: Db) -> None:
    good = {"_id": "x", "sub": "userexternal", "aud": aud(server, project)}
    cases = [
        ({**good, "sub": "someoneelse"}, "wrong_subject"),
        ({k: v for k, v in good.items() if k != "sub"}, "missing_claim"),
        ({k: v for k, v in good.items() if k != "_id"}, "missing_claim"),
        ({k: v for k, v in good.items() if k != "aud"}, "missing_claim"),
        ({**good, "aud": aud(server, project) + "/"}, "wrong_audience"),
        ({**good, "aud": f"{server.url}/projects/000000000000000000000000"}, "wrong_audience"),
        ({**good, "_id": {"nested": 1}}, "invalid_claim"),
        ({**good, "_id": True}, "invalid_claim"),
        ({**good, "aud": 5}, "malformed"),
    ]
    for claims, reason in cases:
        r = sign_in(api, hs256(project.secret, claims))
        assert r.status_code == 401, claims
        assert r.json()["error"] == {"code": "invalid_token", "message": r.json()["msg"], "reason": reason}, claims
    assert db.count("end_users", "project_id = :p", p=project.id) == 0


def test_missing_authorization_is_401(api: httpx.Client) -> None:
    r = api.post("/v1/auth/signinWithCustomToken")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_token"


def test_node_signed_token(api: httpx.Client, server: Server, project: Project, node_mint: Any) -> None:
    token = node_mint(
        "tiledesk", project.secret, {"_id": "node-td", "sub": "userexternal", "aud": aud(server, project)}
    )
    assert sign_in(api, token).status_code == 200
