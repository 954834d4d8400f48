"""`loopline users|tokens|members ...`: who may use this loopline, and with which role."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from loopline.cli.context import cli_context, print_json
from loopline.cli.render import when
from loopline.core.access import Role
from loopline.services import Access

users = typer.Typer(help="Users of a shared loopline.", no_args_is_help=True)
tokens = typer.Typer(help="API tokens: shown once, stored only as a hash.", no_args_is_help=True)
members = typer.Typer(help="Roles per project: viewer, editor, maintainer, owner.", no_args_is_help=True)
JSON = typer.Option(False, "--json", help="Print JSON.")


def _service(ctx: typer.Context) -> Access:
    return cli_context(ctx).services.access


@users.command("create")
def create_user(
    ctx: typer.Context,
    name: str = typer.Argument(...),
    admin: bool = typer.Option(False, "--admin", help="May manage users and every project."),
) -> None:
    user = _service(ctx).create_user(name, admin=admin)
    Console().print(f"user {user.name} created{' (administrator)' if user.is_admin else ''}")


@users.command("list")
def list_users(ctx: typer.Context, as_json: bool = JSON) -> None:
    found = _service(ctx).users()
    if as_json:
        print_json(found)
        return
    table = Table("user", "administrator", "created", "disabled")
    for u in found:
        table.add_row(u.name, "yes" if u.is_admin else "", when(u.created_at), "yes" if u.disabled else "")
    Console().print(table)


@tokens.command("create")
def create_token(
    ctx: typer.Context,
    user: str = typer.Argument(...),
    name: str = typer.Option("default", help="What the token is for."),
    expires_days: float | None = typer.Option(None, help="Days until it expires (default: never)."),
) -> None:
    """Create a token; it is printed once and cannot be shown again."""
    token, secret = _service(ctx).create_token(user, name, expires_days)
    Console(stderr=True).print(f"token {token.id} for {user}; store it now, it is not shown again:")
    print(secret)


@tokens.command("list")
def list_tokens(ctx: typer.Context, user: str = typer.Argument(...), as_json: bool = JSON) -> None:
    found = _service(ctx).tokens(user)
    if as_json:
        print_json(found)
        return
    table = Table("id", "name", "starts with", "created", "expires", "revoked")
    for t in found:
        table.add_row(str(t.id), t.name, t.prefix, when(t.created_at), when(t.expires_at), when(t.revoked_at))
    Console().print(table)


@tokens.command("revoke")
def revoke_token(ctx: typer.Context, token_id: int = typer.Argument(...)) -> None:
    token = _service(ctx).revoke_token(token_id)
    Console().print(f"token {token.id} of {token.user} revoked")


@members.command("set")
def set_role(
    ctx: typer.Context,
    project: str = typer.Argument(...),
    user: str = typer.Argument(...),
    role: Role = typer.Argument(..., help="viewer, editor, maintainer or owner."),
) -> None:
    _service(ctx).set_role(project, user, role)
    Console().print(f"{user} is {role.value} on project {project}")


@members.command("remove")
def remove_member(
    ctx: typer.Context, project: str = typer.Argument(...), user: str = typer.Argument(...)
) -> None:
    _service(ctx).remove_member(project, user)


@members.command("list")
def list_members(ctx: typer.Context, project: str = typer.Argument(...), as_json: bool = JSON) -> None:
    found = _service(ctx).members(project)
    if as_json:
        print_json([{"user": u, "role": r.value} for u, r in found])
        return
    table = Table("user", "role", title=f"project {project}")
    for user, role in found:
        table.add_row(user, role.value)
    Console().print(table)
