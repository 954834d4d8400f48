"""Who is calling, users and tokens, project members, and the audit trail."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from loopline.core.access import ApiToken, User
from loopline.core.audit import AuditEntry
from loopline.core.wire import to_wire
from loopline.server.deps import Access, Audit, Id, Paging, page
from loopline.server.encoding import json_response
from loopline.server.schemas import (
    AuditCheck,
    CreatedToken,
    Member,
    Membership,
    NewToken,
    NewUser,
    Page,
    Whoami,
)

router = APIRouter(tags=["governance"])


@router.get("/whoami", response_model=Whoami)
def whoami(access: Access) -> Response:
    me = access.principal
    return json_response({"name": me.name, "admin": me.is_owner, "roles": access.my_roles()})


@router.get("/users", response_model=Page[User])
def list_users(access: Access, paging: Paging) -> Response:
    return json_response(page(access.users(), paging))


@router.post("/users", response_model=User, status_code=201)
def create_user(access: Access, body: NewUser) -> Response:
    return json_response(access.create_user(body.name, admin=body.admin), 201)


@router.get("/users/{user}/tokens", response_model=Page[ApiToken])
def list_tokens(access: Access, user: str, paging: Paging) -> Response:
    return json_response(page(access.tokens(user), paging))


@router.post("/users/{user}/tokens", response_model=CreatedToken, status_code=201)
def create_token(access: Access, user: str, body: NewToken) -> Response:
    token, secret = access.create_token(user, body.name, body.expires_days)
    return json_response({**to_wire(token), "token": secret}, 201)


@router.delete("/tokens/{token_id}", response_model=ApiToken)
def revoke_token(access: Access, token_id: Id) -> Response:
    return json_response(access.revoke_token(token_id))


@router.get("/projects/{project}/members", response_model=Page[Member])
def members(access: Access, project: str, paging: Paging) -> Response:
    return json_response(page([{"user": u, "role": r} for u, r in access.members(project)], paging))


@router.put("/projects/{project}/members/{user}", status_code=204)
def set_role(access: Access, project: str, user: str, body: Membership) -> Response:
    access.set_role(project, user, body.role)
    return Response(status_code=204)


@router.delete("/projects/{project}/members/{user}", status_code=204)
def remove_member(access: Access, project: str, user: str) -> Response:
    access.remove_member(project, user)
    return Response(status_code=204)


@router.get("/audit", response_model=Page[AuditEntry])
def audit_entries(
    audit: Audit,
    paging: Paging,
    actor: str | None = None,
    action: Annotated[str | None, Query(description="an action, or a prefix ending in '.'")] = None,
    target: str | None = None,
    since_ms: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    until_ms: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    before_id: Annotated[
        int | None, Query(ge=0, le=2**63 - 1, description="entries older than this one")
    ] = None,
) -> Response:
    limit = paging.end + 1
    entries = audit.entries(
        actor=actor,
        action=action,
        target=target,
        since_ms=since_ms,
        until_ms=until_ms,
        before_id=before_id,
        limit=limit,
    )
    return json_response(page(entries, paging))


@router.get("/audit/verify", response_model=AuditCheck)
def audit_verify(
    audit: Audit, anchor: Annotated[str | None, Query(pattern="^[0-9a-f]{64}$")] = None
) -> Response:
    check = audit.verify(anchor=anchor)
    return json_response(
        {
            "entries": check.entries,
            "head": check.head,
            "intact": check.intact,
            "problems": check.problems,
            "unsealed": check.unsealed,
        }
    )
