"""Users, passwords, tokens, sessions, workspace memberships and dashboards — the service the
API server calls.

No web framework here: :class:`Accounts` takes a Store, a Clock and :class:`AuthSettings`
and raises the errors of :mod:`kpidash.errors` (InvalidCredentials, InvalidToken,
TokenReused, RateLimited, Forbidden, NotFound, Conflict, InputError), which the API maps to
responses.
"""

from kpidash.auth.dashboards import check_name, check_spec
from kpidash.auth.models import Claims, Dashboard, Session, SessionState, TokenPair, User
from kpidash.auth.passwords import Passwords, check_password, hash_password, verify_password
from kpidash.auth.profiles import THEMES
from kpidash.auth.roles import Role
from kpidash.auth.service import Accounts
from kpidash.auth.settings import AuthSettings
from kpidash.auth.tokens import (
    decode_access_token,
    hash_refresh_token,
    issue_access_token,
    new_refresh_token,
)

__all__ = [
    "THEMES",
    "Accounts",
    "AuthSettings",
    "Claims",
    "Dashboard",
    "Passwords",
    "Role",
    "Session",
    "SessionState",
    "TokenPair",
    "User",
    "check_name",
    "check_password",
    "check_spec",
    "decode_access_token",
    "hash_password",
    "hash_refresh_token",
    "issue_access_token",
    "new_refresh_token",
    "verify_password",
]
