"""Roles, ordered: a higher role may do everything a lower one may."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from kpidash.errors import InputError


class Role(StrEnum):
    """viewer < analyst < admin."""

    VIEWER = "viewer"
    ANALYST = "analyst"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """0 for viewer, 1 for analyst, 2 for admin."""
        return _ORDER.index(self)

    def allows(self, required: Role) -> bool:
        """True when this role is ``required`` or above it."""
        return self.rank >= Role(required).rank

    @classmethod
    def parse(cls, value: Any) -> Role:
        """A Role from its name; InputError naming the choices otherwise."""
        try:
            return cls(value)
        except ValueError:
            raise InputError(f"role must be one of {', '.join(_ORDER)}, got {value!r}") from None


_ORDER = (Role.VIEWER, Role.ANALYST, Role.ADMIN)
