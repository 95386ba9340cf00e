"""The administrators' users page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from labelloop.accounts import service as accounts
from labelloop.web import queries
from labelloop.web.deps import CurrentActor, CurrentUser, SessionDep, TransactionRoute
from labelloop.web.templating import render

router = APIRouter(route_class=TransactionRoute)


@router.get("/admin/users")
def users_page(
    request: Request, session: SessionDep, actor: CurrentActor, user: CurrentUser
) -> Response:
    rows = queries.users_overview(session, actor=actor)
    return render(
        request, "admin_users.html", {"rows": rows, "permissions": queries.role_permissions()}
    )


@router.post("/admin/users")
def create_user(
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1000)],
    email: Annotated[str | None, Form(max_length=320)] = None,
    display_name: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    accounts.create_user(
        session,
        actor=actor,
        username=username,
        email=email or None,
        password=password,
        display_name=display_name or None,
    )
    return RedirectResponse("/admin/users", status_code=303)
