"""Staff sign-up and sign-in (contract §2), Tiledesk shapes; who the calling staff session is."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from chatgate.http import presenters
from chatgate.http.requests import caller_of, json, parse_body, session_caller
from chatgate.http.routing import Endpoint
from chatgate.http.schemas import SignIn, StaffMeOut, StaffSignInOut, StaffSignUp, StaffSignUpOut
from chatgate.services.bundle import Services


def endpoints(services: Services) -> list[Endpoint]:
    async def staff_signup(request: Request) -> Response:
        body = await parse_body(request, StaffSignUp, forms=True)
        account = await services.staff.sign_up(
            body.email, body.password, body.firstname, body.lastname, caller_of(request)
        )
        return json({"success": True, "msg": "Successfully created new user.", "user": presenters.staff(account)})

    async def staff_signin(request: Request) -> Response:
        body = await parse_body(request, SignIn, forms=True)
        result = await services.staff.sign_in(body.email, body.password, caller_of(request))
        return json(
            {
                "success": True,
                "token": presenters.session_token(result.token),
                "user": presenters.staff(result.account, with_dates=False),
            }
        )

    async def staff_me(request: Request) -> Response:
        account = await services.staff.me(await session_caller(services, request))
        return json(presenters.staff_me(account))

    return [
        Endpoint(
            "POST",
            "/v1/auth/signup",
            staff_signup,
            "Create a staff account",
            "staff",
            body=StaffSignUp,
            forms=True,
            response=StaffSignUpOut,
            errors=(400, 409, 422, 429),
        ),
        Endpoint(
            "POST",
            "/v1/auth/signin",
            staff_signin,
            "Sign a staff member in",
            "staff",
            body=SignIn,
            forms=True,
            response=StaffSignInOut,
            errors=(400, 401, 422, 429),
        ),
        Endpoint(
            "GET",
            "/v1/staff/me",
            staff_me,
            "Who the calling staff session is",
            "staff",
            response=StaffMeOut,
            auth="session",
            errors=(403,),
        ),
    ]
