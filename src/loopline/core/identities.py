"""Identities from an OpenID Connect provider: who a user is there, how their user name here
is chosen, and how the provider's groups map to an administrator flag and project roles."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from loopline.core.access import Role
from loopline.core.errors import InvalidInput
from loopline.core.names import RESERVED_USERS

ADMIN = "admin"
MAX_USER_NAME = 64
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class Identity:
    """A user's account at a provider (`issuer`, `subject`), as of their last sign-in."""

    issuer: str
    subject: str
    user: str
    email: str | None
    groups: tuple[str, ...]
    created_at: int
    last_seen_at: int


@dataclass(frozen=True, slots=True)
class GroupRoles:
    """What the provider's groups grant: administrators, and roles on projects.

    Only the projects named here (and the administrator flag, when some group grants it)
    follow the groups; roles on other projects are set by hand."""

    admin_groups: frozenset[str] = frozenset()
    grants: tuple[tuple[str, str, Role], ...] = ()  # (group, project, role)

    @property
    def projects(self) -> list[str]:
        """The projects whose roles the groups decide, in order of first mention."""
        return list(dict.fromkeys(project for _, project, _ in self.grants))

    def roles_for(self, groups: Iterable[str]) -> dict[str, Role]:
        """The highest role each project grants to any of `groups`."""
        held = set(groups)
        roles: dict[str, Role] = {}
        for group, project, role in self.grants:
            if group in held and (project not in roles or role.rank > roles[project].rank):
                roles[project] = role
        return roles

    def admin_for(self, groups: Iterable[str]) -> bool:
        """Whether any of `groups` makes an administrator."""
        return not self.admin_groups.isdisjoint(groups)

    def maps_any(self, groups: Iterable[str]) -> bool:
        """Whether any of `groups` is named by the mapping."""
        named = self.admin_groups | {group for group, _, _ in self.grants}
        return not named.isdisjoint(groups)


def parse_group_roles(text: str | None) -> GroupRoles:
    """`GROUP=admin` and `GROUP=PROJECT:ROLE` entries, comma-separated, e.g.
    `ml-admins=admin,data-science=default:editor,analysts=default:viewer`. A group may
    appear more than once; the last `=` of an entry ends its group name."""
    admins: set[str] = set()
    grants: list[tuple[str, str, Role]] = []
    roles = ", ".join(r.value for r in Role)
    for position, entry in enumerate((e.strip() for e in (text or "").split(",")), 1):
        if not entry:
            continue
        group, equals, target = (part.strip() for part in entry.rpartition("="))
        where = f"group mapping entry {position} ({entry!r})"
        if not equals or not group:
            raise InvalidInput(f"{where} must read GROUP=admin or GROUP=PROJECT:ROLE")
        if target == ADMIN:
            admins.add(group)
            continue
        project, colon, role = (part.strip() for part in target.rpartition(":"))
        if not colon or not project:
            raise InvalidInput(f"{where}: {target!r} must be admin or PROJECT:ROLE, e.g. default:editor")
        if role not in {r.value for r in Role}:
            raise InvalidInput(f"{where}: role {role!r} is not one of {roles}")
        grants.append((group, project, Role(role)))
    return GroupRoles(frozenset(admins), tuple(grants))


@dataclass(frozen=True, slots=True)
class IdentityPolicy:
    """How a verified ID token becomes a user here."""

    group_roles: GroupRoles = field(default_factory=GroupRoles)
    username_claim: str = "preferred_username"
    groups_claim: str = "groups"
    allow_unmapped: bool = False  # sign in users none of whose groups the mapping names

    def groups(self, claims: Mapping[str, object]) -> tuple[str, ...]:
        """The groups a token's claims list (a list of strings, or one string), sorted."""
        found = claims.get(self.groups_claim)
        if isinstance(found, str):
            found = [found]
        if not isinstance(found, list):
            return ()
        return tuple(sorted({g for g in found if isinstance(g, str) and g}))

    def user_name(self, claims: Mapping[str, object]) -> str:
        """A valid user name from the first of the username claim, `preferred_username`,
        `email` and `sub` that the claims hold; characters a name cannot hold become '-'."""
        for claim in (self.username_claim, "preferred_username", "email", "sub"):
            value = claims.get(claim)
            if isinstance(value, str):
                name = _NOT_IN_NAME.sub("-", value).strip("-._")[:MAX_USER_NAME].strip("-._")
                if name:
                    return name
        return "user"


def name_choices(wanted: str, issuer: str, subject: str) -> list[str]:
    """The names to try for a new user, in order: `wanted`, then `wanted` with a suffix fixed
    by the identity (so the same person gets the same name on every server). A reserved name
    goes straight to the suffixed one."""
    suffix = hashlib.sha256(f"{issuer}\n{subject}".encode()).hexdigest()[:8]
    suffixed = f"{wanted[: MAX_USER_NAME - 9]}-{suffix}"
    return [suffixed] if wanted.lower() in RESERVED_USERS else [wanted, suffixed]
