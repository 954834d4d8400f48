"""How a provider's groups map to roles, and how a provider's claims become a user name."""

from __future__ import annotations

import pytest

from loopline.core.access import Role
from loopline.core.errors import InvalidInput
from loopline.core.identities import IdentityPolicy, name_choices, parse_group_roles


def test_the_highest_role_any_group_grants_wins() -> None:
    mapping = parse_group_roles(
        "ml-admins=admin, data-science=default:editor,analysts=default:viewer,"
        "cn=leads=default:maintainer,analysts=churn:viewer"
    )
    assert mapping.admin_groups == {"ml-admins"}
    assert mapping.projects == ["default", "churn"]
    assert mapping.roles_for(["analysts", "data-science"]) == {"default": Role.EDITOR, "churn": Role.VIEWER}
    assert mapping.roles_for(["cn=leads"]) == {"default": Role.MAINTAINER}  # the last '=' ends the group
    assert mapping.roles_for(["elsewhere"]) == {}
    assert mapping.admin_for(["ml-admins"]) and not mapping.admin_for(["analysts"])
    assert mapping.maps_any(["ml-admins"]) and not mapping.maps_any(["elsewhere"])
    assert parse_group_roles(None).projects == [] and parse_group_roles(" , ").admin_groups == set()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("data-science", "entry 1 ('data-science') must read GROUP=admin or GROUP=PROJECT:ROLE"),
        ("a=admin,=default:editor", "entry 2"),
        ("data-science=editor", "'editor' must be admin or PROJECT:ROLE, e.g. default:editor"),
        ("data-science=default:boss", "role 'boss' is not one of viewer, editor, maintainer, owner"),
    ],
)
def test_a_bad_mapping_says_which_entry_and_why(text: str, says: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_group_roles(text)
    assert says in str(raised.value)


def test_user_names_come_from_the_claims_made_valid() -> None:
    policy = IdentityPolicy()
    assert policy.user_name({"preferred_username": "dana", "email": "d@x.org", "sub": "1"}) == "dana"
    assert policy.user_name({"preferred_username": "Dana Smith@corp.example"}) == "Dana-Smith-corp.example"
    assert policy.user_name({"preferred_username": "  ", "email": "d.k@x.org"}) == "d.k-x.org"
    assert policy.user_name({"sub": "../../etc"}) == "etc"
    assert policy.user_name({"sub": "!!!"}) == "user"
    assert len(policy.user_name({"sub": "a" * 500})) == 64
    assert IdentityPolicy(username_claim="upn").user_name({"upn": "u1", "preferred_username": "p"}) == "u1"


def test_groups_are_read_as_a_list_or_one_string() -> None:
    policy = IdentityPolicy(groups_claim="roles")
    assert policy.groups({"roles": ["b", "a", "a", 3, ""]}) == ("a", "b")
    assert policy.groups({"roles": "solo"}) == ("solo",)
    assert policy.groups({"groups": ["ignored"]}) == ()


def test_a_taken_name_falls_back_to_one_fixed_by_the_identity() -> None:
    first = name_choices("dana", "https://idp.example", "sub-1")
    assert first[0] == "dana" and first[1].startswith("dana-") and len(first[1]) == len("dana-") + 8
    assert name_choices("dana", "https://idp.example", "sub-1") == first
    assert name_choices("dana", "https://idp.example", "sub-2")[1] != first[1]
    assert name_choices("Root", "https://idp.example", "sub-1") == [f"Root-{first[1][-8:]}"]
