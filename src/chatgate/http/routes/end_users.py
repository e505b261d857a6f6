"""End users' ways in (contract §4), ``auth/me`` and logout."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from chatgate.domain.identity import MAX_EXTERNAL_ID_LENGTH, external_id_from, normalize_email
from chatgate.errors import TokenRejected, ValidationFailed
from chatgate.http import presenters
from chatgate.http.requests import (
    authorization_token,
    caller_of,
    json,
    parse_body,
    require_token,
    session_caller,
)
from chatgate.http.routing import Endpoint
from chatgate.http.schemas import (
    AnonymousSignIn,
    CustomerLogin,
    CustomerLoginOut,
    CustomTokenSignIn,
    EndUserLoginOut,
    EndUserSignIn,
    EndUserSignUp,
    ExternalCodeExchange,
    MeOut,
)
from chatgate.services.bundle import Services
from chatgate.services.end_user_auth import EndUserLogin


def _identifier_query(request: Request) -> tuple[str | None, str | None]:
    """``?email=`` and ``?externalId=`` in their normal forms; a malformed one is a 422."""
    raw_email = request.query_params.get("email")
    raw_external_id = request.query_params.get("externalId")
    email = normalize_email(raw_email) if raw_email is not None else None
    external_id = external_id_from(raw_external_id) if raw_external_id is not None else None
    problems = {}
    if raw_email is not None and email is None:
        problems["email"] = "is not a valid email address"
    if raw_external_id is not None and external_id is None:
        problems["externalId"] = f"must be 1 to {MAX_EXTERNAL_ID_LENGTH} characters without control characters"
    if problems:
        raise ValidationFailed(problems)
    return email, external_id


def login_body(login: EndUserLogin, *, created: bool = False) -> dict[str, object]:
    body: dict[str, object] = {
        "success": True,
        "token": presenters.session_token(login.token),
        "user": presenters.end_user(login.user),
        "merged_conversations": login.merged_conversations,
    }
    if created:
        body["created"] = login.created
    return body


def tiledesk_login_body(login: EndUserLogin) -> dict[str, object]:
    """Tiledesk's answer: the token's custom claims also at the top level of ``user``."""
    return {**login_body(login), "user": presenters.end_user_with_claims(login.user)}


def kustomer_login_body(login: EndUserLogin) -> dict[str, object]:
    """Kustomer's answer: ``email`` and ``externalId`` also at the top level, where its sample reads them."""
    return {**login_body(login), "email": login.user.email, "externalId": login.user.external_id}


def endpoints(services: Services) -> list[Endpoint]:
    auth = services.end_users

    async def signin_anonymously(request: Request) -> Response:
        body = await parse_body(request, AnonymousSignIn, forms=True)
        login = await auth.sign_in_anonymously(
            body.id_project, body.firstname, body.lastname, body.email, caller_of(request)
        )
        return json(login_body(login))

    async def signin_with_custom_token(request: Request) -> Response:
        token = authorization_token(request, bare=True)
        if token is None:
            raise TokenRejected("malformed", "Send the token as Authorization: JWT <token>.")
        body = await parse_body(request, CustomTokenSignIn, forms=True)
        login = await auth.sign_in_with_custom_token(token, caller_of(request), body.anonymous_token)
        return json(tiledesk_login_body(login))

    async def exchange_external_code(request: Request) -> Response:
        body = await parse_body(request, ExternalCodeExchange)
        login = await auth.exchange_external_code(
            request.path_params["pid"], body.externalAuthCode, caller_of(request), body.anonymous_token
        )
        return json(login_body(login, created=True))

    async def customer_login(request: Request) -> Response:
        body = await parse_body(request, CustomerLogin)
        login = await auth.customer_login(
            request.path_params["pid"], body.jwtToken, caller_of(request), body.anonymous_token
        )
        return json(kustomer_login_body(login))

    async def email_signup(request: Request) -> Response:
        body = await parse_body(request, EndUserSignUp)
        login = await auth.email_sign_up(
            request.path_params["pid"],
            body.email,
            body.password,
            body.firstname,
            body.lastname,
            caller_of(request),
            body.anonymous_token,
        )
        return json(login_body(login))

    async def email_signin(request: Request) -> Response:
        body = await parse_body(request, EndUserSignIn)
        login = await auth.email_sign_in(
            request.path_params["pid"],
            body.email,
            body.password,
            caller_of(request),
            body.anonymous_token,
        )
        return json(login_body(login))

    async def me(request: Request) -> Response:
        pid = request.path_params["pid"]
        email, external_id = _identifier_query(request)
        if email is None and external_id is None:
            user = await auth.me(require_token(request), pid)
            return json({"loggedIn": True, "user": presenters.end_user(user)})
        # isLoggedIn({email} | {externalId}): is this session exactly that user? Asked after a logout
        # (or with no session at all), the answer is no rather than a 401.
        found = await auth.logged_in_as(authorization_token(request), pid, email, external_id)
        return json({"loggedIn": found is not None, "user": presenters.end_user(found) if found else None})

    async def logout(request: Request) -> Response:
        # Only a session can be ended: HTTP Basic credentials have none.
        await services.sessions.logout(await session_caller(services, request, basic=False))
        return json({"success": True})

    login_errors = (400, 401, 403, 404, 409, 413, 422)
    return [
        Endpoint(
            "POST",
            "/v1/auth/signinAnonymously",
            signin_anonymously,
            "Tiledesk: sign a visitor in anonymously",
            "end users",
            body=AnonymousSignIn,
            forms=True,
            response=EndUserLoginOut,
            errors=(400, 403, 404, 422, 429),
        ),
        Endpoint(
            "POST",
            "/v1/auth/signinWithCustomToken",
            signin_with_custom_token,
            "Tiledesk: sign in with a custom token (claims _id, sub=userexternal, aud)",
            "end users",
            body=CustomTokenSignIn,
            forms=True,
            response=EndUserLoginOut,
            auth="customerToken",
            errors=login_errors,
        ),
        Endpoint(
            "POST",
            "/v1/projects/{pid}/auth/external-code",
            exchange_external_code,
            "TypingMind: exchange an externalAuthCode for a session",
            "end users",
            body=ExternalCodeExchange,
            response=EndUserLoginOut,
            errors=login_errors,
        ),
        Endpoint(
            "POST",
            "/v1/projects/{pid}/auth/customer/login",
            customer_login,
            "Kustomer: login({jwtToken}); email wins over externalId; fresh iat",
            "end users",
            body=CustomerLogin,
            response=CustomerLoginOut,
            errors=login_errors,
        ),
        Endpoint(
            "POST",
            "/v1/projects/{pid}/auth/email/signup",
            email_signup,
            "An end user signs up with email and password",
            "end users",
            body=EndUserSignUp,
            response=EndUserLoginOut,
            errors=(400, 403, 404, 409, 422, 429),
        ),
        Endpoint(
            "POST",
            "/v1/projects/{pid}/auth/email/signin",
            email_signin,
            "An end user signs in with email and password",
            "end users",
            body=EndUserSignIn,
            response=EndUserLoginOut,
            errors=(400, 401, 403, 404, 422, 429),
        ),
        Endpoint(
            "GET",
            "/v1/projects/{pid}/auth/me",
            me,
            "Who this end-user session is (Kustomer isLoggedIn)",
            "end users",
            response=MeOut,
            auth="session",
            session_only=True,
            errors=(422,),
            query=(
                ("email", "true only if the session is this email's user"),
                ("externalId", "true only if the session is this externalId's user"),
            ),
        ),
        Endpoint(
            "POST",
            "/v1/auth/logout",
            logout,
            "End the calling session at once",
            "end users",
            auth="session",
            session_only=True,
            errors=(),
        ),
    ]
