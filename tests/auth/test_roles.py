from __future__ import annotations

import pytest

from kpidash.auth import Role
from kpidash.errors import InputError


@pytest.mark.parametrize(("role", "required", "allowed"), [
    (Role.VIEWER, Role.VIEWER, True), (Role.VIEWER, Role.ANALYST, False),
    (Role.VIEWER, Role.ADMIN, False), (Role.ANALYST, Role.VIEWER, True),
    (Role.ANALYST, Role.ANALYST, True), (Role.ANALYST, Role.ADMIN, False),
    (Role.ADMIN, Role.VIEWER, True), (Role.ADMIN, Role.ANALYST, True),
    (Role.ADMIN, Role.ADMIN, True),
], ids=lambda v: str(v))
def test_allows_follows_the_order(role: Role, required: Role, allowed: bool) -> None:
    assert role.allows(required) is allowed


def test_roles_are_strings() -> None:
    assert Role("analyst") is Role.ANALYST and Role.ADMIN == "admin"
    assert [r.rank for r in Role] == [0, 1, 2]


def test_parse_names_the_choices() -> None:
    assert Role.parse("admin") is Role.ADMIN
    with pytest.raises(InputError, match=r"viewer, analyst, admin.*'root'"):
        Role.parse("root")
