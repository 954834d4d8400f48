"""Signing in with an identity an OpenID Connect provider vouched for: the user is created on
first sign-in, and the provider's groups set their administrator flag and roles each time.

Who owns which role: on a project that the group mapping names, the groups decide, at every
sign-in, the role of each user who signs in through the provider (the highest any group
grants, or none); a role set there by hand lasts until that user's next sign-in. Projects the
mapping does not name are left to their owners. The administrator flag follows the groups
when the mapping names an administrators' group, and is left alone otherwise.

A user who exists already (created by hand, or through another provider) is never taken
over: a new identity whose name is taken gets that name with a suffix of its own."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from loopline.core.access import User
from loopline.core.clock import now_ms
from loopline.core.entities import Principal
from loopline.core.errors import AlreadyExists, InvalidInput
from loopline.core.identities import Identity, IdentityPolicy, name_choices
from loopline.governance.audit import AuditTrail
from loopline.store import MetadataStore


@dataclass(frozen=True)
class SignInOutcome:
    """Who signed in, or why they may not (a refusal comes after their roles were updated)."""

    principal: Principal
    refusal: str | None = None


def sign_in(
    store: MetadataStore,
    audit: AuditTrail,
    issuer: str,
    subject: str,
    claims: Mapping[str, object],
    policy: IdentityPolicy,
) -> SignInOutcome:
    """Provision or update the user of (`issuer`, `subject`); call inside a transaction."""
    if not issuer or len(issuer) > 500 or not subject or len(subject) > 255:
        raise InvalidInput("an identity needs an issuer (at most 500 characters) and a subject (at most 255)")
    groups = policy.groups(claims)
    email = claims.get("email")
    email = email[:320] if isinstance(email, str) else None
    mapped = policy.allow_unmapped or policy.group_roles.maps_any(groups)
    unmapped = (
        f"none of your groups at {issuer} ({', '.join(groups) or 'no groups'}) is given a role on this "
        "server; ask an administrator to map one (LOOPLINE_OIDC_GROUP_ROLES)"
    )
    now = now_ms()
    known = store.access.identity(issuer, subject)
    if known is None:
        if not mapped:  # nobody is created whom the mapping does not know
            return SignInOutcome(Principal("anonymous"), unmapped)
        user = _provision(store, audit, issuer, subject, policy.user_name(claims), now)
        store.access.add_identity(Identity(issuer, subject, user.name, email, groups, now, now))
    else:
        user = store.access.user(known.user)
        if user.disabled:
            return SignInOutcome(Principal(user.name), f"user {user.name!r} is disabled")
        store.access.update_identity(issuer, subject, email, groups, now)
    as_user = audit.acting_as(Principal(user.name))
    is_admin = _apply_groups(store, as_user, user, issuer, groups, policy)
    return SignInOutcome(Principal(user.name, is_owner=is_admin), None if mapped else unmapped)


def _provision(
    store: MetadataStore, audit: AuditTrail, issuer: str, subject: str, wanted: str, now: int
) -> User:
    taken = {u.name.lower() for u in store.access.users()}
    name = next((n for n in name_choices(wanted, issuer, subject) if n.lower() not in taken), None)
    if name is None:
        raise AlreadyExists(
            f"the user names {wanted!r} and its variant for {issuer} are taken; an administrator must "
            "rename or remove one of those users"
        )
    user = store.access.add_user(name, False, now)
    audit.acting_as(Principal(name)).record(
        "user.create", f"user:{name}", after={"admin": False, "issuer": issuer, "subject": subject},
        reason=f"first sign-in with {issuer}",
    )  # fmt: skip
    return user


def _apply_groups(
    store: MetadataStore,
    audit: AuditTrail,
    user: User,
    issuer: str,
    groups: tuple[str, ...],
    policy: IdentityPolicy,
) -> bool:
    """Set the roles and the administrator flag the groups decide; returns the flag."""
    reason = f"groups at {issuer}: {', '.join(groups) or 'none'}"
    wanted = policy.group_roles.roles_for(groups)
    for project in policy.group_roles.projects:
        before = store.access.role(project, user.name)
        after = wanted.get(project)
        if after == before:
            continue
        target = f"project:{project}/{user.name}"
        if after is None:
            store.access.remove_member(project, user.name)
            audit.record("member.remove", target, before=before, reason=reason)
        else:
            store.access.set_role(project, user.name, after)
            audit.record("member.role", target, before=before, after=after.value, reason=reason)
    if not policy.group_roles.admin_groups:
        return user.is_admin
    is_admin = policy.group_roles.admin_for(groups)
    if is_admin != user.is_admin:
        store.access.set_admin(user.name, is_admin)
        audit.record("user.admin", f"user:{user.name}", before=user.is_admin, after=is_admin, reason=reason)
    return is_admin
