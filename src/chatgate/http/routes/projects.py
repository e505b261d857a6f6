"""Projects, their settings and members (contract §2)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from chatgate.domain.models import Role
from chatgate.http import presenters
from chatgate.http.requests import API_HEADERS, json, parse_body, session_caller
from chatgate.http.routing import Endpoint
from chatgate.http.schemas import MemberAdd, MemberListOut, ProjectChange, ProjectCreate, ProjectOut
from chatgate.services.bundle import Services


def endpoints(services: Services) -> list[Endpoint]:
    projects = services.projects

    async def create_project(request: Request) -> Response:
        body = await parse_body(request, ProjectCreate)
        caller = await session_caller(services, request)
        project, role = await projects.create(body.name, caller)
        return json(presenters.project(project, role))

    async def list_projects(request: Request) -> Response:
        mine = await projects.list_mine(await session_caller(services, request))
        return json([presenters.project(p, role) for p, role in mine])

    async def get_project(request: Request) -> Response:
        pid = request.path_params["pid"]
        caller = await session_caller(services, request)
        project, role = await projects.get(pid, caller)
        return json(presenters.project(project, role))

    async def change_project(request: Request) -> Response:
        pid = request.path_params["pid"]
        body = await parse_body(request, ProjectChange)
        caller = await session_caller(services, request)
        project, role = await projects.update(pid, caller, name=body.name, settings=body.settings)
        return json(presenters.project(project, role))

    async def add_member(request: Request) -> Response:
        pid = request.path_params["pid"]
        body = await parse_body(request, MemberAdd)
        caller = await session_caller(services, request)
        member = await projects.add_member(pid, body.email, Role(body.role), caller)
        return json({"success": True, "staffId": member.staff_id, "role": member.role.value}, 201)

    async def list_members(request: Request) -> Response:
        pid = request.path_params["pid"]
        members = await projects.members(pid, await session_caller(services, request))
        return json({"members": [presenters.member(m) for m in members]})

    async def remove_member(request: Request) -> Response:
        pid, staff_id = request.path_params["pid"], request.path_params["staff_id"]
        await projects.remove_member(pid, staff_id, await session_caller(services, request))
        return Response(status_code=204, headers=API_HEADERS)

    errors = (400, 403, 404, 422)
    return [
        Endpoint(
            "POST",
            "/v1/projects",
            create_project,
            "Create a project; you become its owner",
            "projects",
            body=ProjectCreate,
            response=ProjectOut,
            auth="session",
            errors=(400, 403, 422),
        ),
        Endpoint("GET", "/v1/projects", list_projects, "List your projects", "projects", auth="session", errors=(403,)),
        Endpoint(
            "GET",
            "/v1/projects/{pid}",
            get_project,
            "Read a project and its settings",
            "projects",
            response=ProjectOut,
            auth="session",
            errors=(403, 404),
        ),
        Endpoint(
            "PATCH",
            "/v1/projects/{pid}",
            change_project,
            "Change a project's name or settings",
            "projects",
            body=ProjectChange,
            response=ProjectOut,
            auth="session",
            errors=errors,
        ),
        Endpoint(
            "POST",
            "/v1/projects/{pid}/members",
            add_member,
            "Give a staff account a role, or change it (owners; the last owner cannot step down)",
            "projects",
            body=MemberAdd,
            status=201,
            auth="session",
            errors=(*errors, 409),
        ),
        Endpoint(
            "GET",
            "/v1/projects/{pid}/members",
            list_members,
            "List the project's members and their roles (any member)",
            "projects",
            response=MemberListOut,
            auth="session",
            errors=(403, 404),
        ),
        Endpoint(
            "DELETE",
            "/v1/projects/{pid}/members/{staff_id}",
            remove_member,
            "Remove a member (owners; any member may remove themself; never the last owner)",
            "projects",
            status=204,
            auth="session",
            errors=(403, 404, 409),
        ),
    ]
