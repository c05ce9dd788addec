"""The accounts service the API calls: users, login, token refresh and check, sessions,
workspaces and their members (see auth.workspaces) and dashboards.

Time comes from the injected clock only. Users and sessions are global; dashboards belong
to the service's workspace. A new user becomes a member of the ``default`` workspace with
their global role, and a change of global role follows into that membership, so a
single-business install never has to think about workspaces. Security choices, in one place:

* Failed logins are counted per username (trimmed and lower-cased, as login looks it up)
  and per client address over ``failure_window``; at ``max_failures`` further attempts are
  refused with RateLimited *before* the password is checked, until the oldest counted
  failure leaves the window.
* An unknown username and a wrong password give the same message and cost one password
  verification each (a dummy hash for unknown users). Disabled users get that message too.
* Refresh tokens rotate: each refresh returns a new one and retires the old. A retired token
  coming back means it was copied, so the whole session is revoked (TokenReused).
* A session ends ``refresh_ttl`` after login at the latest, or ``idle_timeout`` after its
  last use. ``verify`` touches last_seen at most once a minute.
* Disabling a user, changing their password or deleting them ends their sessions. The last
  enabled admin cannot be demoted, disabled or deleted (Conflict).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from kpidash.auth.dashboards import check_name, check_spec
from kpidash.auth.ingest_tokens import IngestTokenAccounts
from kpidash.auth.models import Claims, Dashboard, Session, SessionState, TokenPair, User
from kpidash.auth.passwords import Passwords, check_password
from kpidash.auth.profiles import (
    PROFILE_DEFAULTS,
    UPDATABLE,
    USERNAME_RE,
    check_display_name,
    check_profile_field,
    check_timezone,
    check_username,
)
from kpidash.auth.roles import Role
from kpidash.auth.settings import AuthSettings
from kpidash.auth.tokens import (
    decode_access_token,
    hash_refresh_token,
    issue_access_token,
    new_refresh_token,
)
from kpidash.auth.workspaces import WorkspaceAccounts
from kpidash.clock import Clock
from kpidash.errors import (
    Conflict,
    Forbidden,
    InputError,
    InvalidCredentials,
    InvalidToken,
    NotFound,
    RateLimited,
    TokenReused,
)
from kpidash.model import DEFAULT_WORKSPACE
from kpidash.store.base import Store

BAD_CREDENTIALS = "wrong username or password"
TOUCH_EVERY = timedelta(minutes=1)


class Accounts(WorkspaceAccounts, IngestTokenAccounts):
    """Users, sessions, workspace memberships and dashboards over a Store, with time from
    ``clock``.

    ``passwords`` defaults to argon2id with pwdlib's recommended parameters.
    """

    def __init__(self, store: Store, clock: Clock, settings: AuthSettings, *,
                 workspace: str = "default", passwords: Passwords | None = None) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.workspace = workspace
        self.passwords = passwords or Passwords()

    # -- users --------------------------------------------------------------------------------

    def create_user(self, username: str, password: str, role: Role | str = Role.VIEWER,
                    display_name: str = "", timezone: str = "UTC") -> User:
        """A new user, a member of the ``default`` workspace with their role; InputError for
        a bad username, password, role, name or time zone, Conflict when the username is
        taken."""
        username = check_username(username)
        check_password(password, username)
        doc = {**PROFILE_DEFAULTS, "display_name": check_display_name(display_name),
               "timezone": check_timezone(timezone)}
        user_id = _new_id("usr")
        now = self.clock.now()
        row = {"id": user_id, "username": username, "role": str(Role.parse(role)),
               "password_hash": self.passwords.hash(password), "doc": doc,
               "created_at": now, "disabled": False}
        with self.store.transaction():
            self.store.add_user(row)
            self.store.put_membership(DEFAULT_WORKSPACE, user_id, str(row["role"]), now)
        return self.get_user(user_id)

    def get_user(self, user_id: str) -> User:
        """A user by id; NotFound otherwise."""
        row = self.store.user(user_id)
        if row is None:
            raise NotFound(f"no user with id {user_id!r}")
        return _user(row)

    def get_user_by_name(self, username: str) -> User:
        """A user by username; NotFound otherwise."""
        row = self.store.user_by_name(username)
        if row is None:
            raise NotFound(f"no user named {username!r}")
        return _user(row)

    def list_users(self) -> list[User]:
        """Every user, by username."""
        return [_user(r) for r in self.store.users()]

    def update_user(self, user_id: str, **changes: Any) -> User:
        """Change some of role, disabled, display_name, timezone, theme, refresh_interval,
        followed, saved_filters; InputError naming an unknown or invalid field. Disabling a
        user ends their sessions; a new role follows into their ``default`` membership."""
        unknown = sorted(set(changes) - set(UPDATABLE))
        if unknown:
            raise InputError(f"unknown user field(s) {', '.join(unknown)}; expected some of "
                             f"{', '.join(UPDATABLE)}")
        clean = {name: check_profile_field(name, value) for name, value in changes.items()}
        now = self.clock.now()
        with self.store.transaction():
            row = self._user_row(user_id)
            stays_admin = (clean.get("role", row["role"]) == Role.ADMIN
                           and not clean.get("disabled", row["disabled"]))
            if not stays_admin:
                self._keep_an_admin(row, "demote or disable")
            update: dict[str, Any] = {k: clean[k] for k in ("role", "disabled") if k in clean}
            profile = {k: v for k, v in clean.items() if k in PROFILE_DEFAULTS}
            if profile:
                update["doc"] = {**row["doc"], **profile}
            if update:
                self.store.update_user(user_id, update, now)
            if "role" in clean and clean["role"] != row["role"]:
                self._sync_default_membership(user_id, clean["role"])
            if clean.get("disabled") and not row["disabled"]:
                self.store.revoke_sessions(now, user_id=user_id)
        return self.get_user(user_id)

    def set_password(self, user_id: str, new_password: str) -> None:
        """Replace a user's password (policy checked) and end all their sessions."""
        row = self._user_row(user_id)
        check_password(new_password, row["username"])
        now = self.clock.now()
        with self.store.transaction():
            self.store.update_user(user_id, {"password_hash": self.passwords.hash(new_password)},
                                   now)
            self.store.revoke_sessions(now, user_id=user_id)

    def delete_user(self, user_id: str) -> None:
        """Delete a user with their sessions, memberships and the dashboards they own;
        NotFound if unknown."""
        with self.store.transaction():
            row = self._user_row(user_id)
            self._keep_an_admin(row, "delete")
            self.store.delete_user(user_id)

    def count_admins(self) -> int:
        """How many enabled admins there are."""
        return sum(1 for r in self.store.users() if r["role"] == Role.ADMIN and not r["disabled"])

    def _user_row(self, user_id: str) -> dict[str, Any]:
        row = self.store.user(user_id)
        if row is None:
            raise NotFound(f"no user with id {user_id!r}")
        return row

    def _keep_an_admin(self, row: Mapping[str, Any], action: str) -> None:
        if row["role"] == Role.ADMIN and not row["disabled"] and self.count_admins() <= 1:
            raise Conflict(f"cannot {action} {row['username']!r}: they are the last admin; "
                           "make another user admin first")

    # -- login, refresh, verify ---------------------------------------------------------------

    def login(self, username: str, password: str, *, address: str,
              user_agent: str = "") -> TokenPair:
        """Tokens for a new session; InvalidCredentials (same message whether the user is
        unknown, disabled or the password wrong), RateLimited after too many failures."""
        now = self.clock.now()
        # one spelling per account: the limit and the lookup both use the trimmed lower case
        # ("VERA", " vera" and "vera" are one user, one failure counter)
        name = username.strip().lower() if isinstance(username, str) else ""
        user_key = f"user:{name[:64]}"  # longer names cannot exist; keep the key small
        keys = [user_key, *([f"addr:{address}"] if address else [])]
        self._check_rate(keys, now)
        row = self.store.user_by_name(name) if USERNAME_RE.match(name) else None
        ok, new_hash = False, None
        if row is None or not isinstance(password, str):
            self.passwords.dummy_verify(password if isinstance(password, str) else "")
        else:
            ok, new_hash = self.passwords.verify_and_update(password, row["password_hash"])
        if row is None or not ok or row["disabled"]:
            with self.store.transaction():
                self.store.clear_login_failures(before=now - self.settings.failure_window)
                self.store.add_login_failures(keys, now)
            raise InvalidCredentials(BAD_CREDENTIALS)
        with self.store.transaction():
            if new_hash:
                self.store.update_user(row["id"], {"password_hash": new_hash}, now)
            self.store.clear_login_failures([user_key])
            return self._open_session(row, now, address, user_agent)

    def _check_rate(self, keys: list[str], now: datetime) -> None:
        window, limit = self.settings.failure_window, self.settings.max_failures
        # a failure at t counts while now < t + window
        found = self.store.login_failures(keys, now - window + timedelta(microseconds=1))
        wait = timedelta(0)
        for times in found.values():
            if len(times) >= limit:
                # below the limit again once the failure that makes it `limit` leaves
                wait = max(wait, times[len(times) - limit] + window - now)
        if wait > timedelta(0):
            seconds = max(1, math.ceil(wait.total_seconds()))
            raise RateLimited(f"too many failed logins; try again in {seconds} s", seconds)

    def _open_session(self, user: Mapping[str, Any], now: datetime, address: str,
                      user_agent: str) -> TokenPair:
        family = _new_id("ses")
        refresh = new_refresh_token()
        self.store.add_session({
            "id": family, "family_id": family, "user_id": user["id"],
            "refresh_hash": hash_refresh_token(refresh), "created_at": now, "last_seen": now,
            "expires_at": now + self.settings.refresh_ttl, "user_agent": user_agent,
            "address": address})
        return self._pair(user, family, refresh, now)

    def _pair(self, user: Mapping[str, Any], session_id: str, refresh: str,
              now: datetime) -> TokenPair:
        access, _ = issue_access_token(self.settings, now, user_id=user["id"],
                                       username=user["username"], role=Role(user["role"]),
                                       session_id=session_id)
        return TokenPair(access_token=access, refresh_token=refresh,
                         expires_in=int(self.settings.access_ttl.total_seconds()),
                         session_id=session_id)

    def refresh(self, refresh_token: str, *, address: str = "", user_agent: str = "",
                ) -> TokenPair:
        """A new token pair for a session's current refresh token, which is retired.
        A retired one revokes the session (TokenReused); an unknown, expired, idle or
        revoked one, or one of a disabled user, gives InvalidToken."""
        if not isinstance(refresh_token, str) or not refresh_token:
            raise InvalidToken("refresh token missing")
        now = self.clock.now()
        row = self.store.session_row(refresh_hash=hash_refresh_token(refresh_token))
        if row is None:
            raise InvalidToken("refresh token not recognised")
        family = row["family_id"]
        if not row["current"]:
            self._reused(family, now)
        state = self._session(row).state(now)
        if state is not SessionState.ACTIVE:
            raise InvalidToken(f"refresh token rejected: session {state}")
        user = self.store.user(row["user_id"])
        if user is None or user["disabled"]:
            raise InvalidToken("refresh token rejected: user no longer active")
        new = new_refresh_token()
        with self.store.transaction():
            ok = self.store.add_session({
                "id": _new_id("rt"), "family_id": family, "user_id": row["user_id"],
                "refresh_hash": hash_refresh_token(new), "created_at": now, "last_seen": now,
                "expires_at": row["expires_at"], "user_agent": user_agent or row["user_agent"],
                "address": address or row["address"], "rotated_from": row["id"]})
        if not ok:  # rotated by a concurrent refresh in between: the same token used twice
            self._reused(family, now)
        return self._pair(user, family, new, now)

    def _reused(self, family: str, now: datetime) -> None:
        self.store.revoke_sessions(now, family_id=family)
        raise TokenReused("this refresh token was already used, so its session has been "
                          "revoked; log in again")

    def verify(self, access_token: str) -> Claims:
        """The claims of a valid access token whose session is active and whose user is
        enabled, with the user's *current* name and role; InvalidToken otherwise."""
        now = self.clock.now()
        claims = decode_access_token(access_token, self.settings, now)
        row = self.store.session(claims.session_id)
        if row is None or row["user_id"] != claims.user_id:
            raise InvalidToken("access token rejected: session not found")
        state = self._session(row).state(now)
        if state is not SessionState.ACTIVE:
            raise InvalidToken(f"access token rejected: session {state}")
        user = self.store.user(claims.user_id)
        if user is None or user["disabled"]:
            raise InvalidToken("access token rejected: user no longer active")
        if now - row["last_seen"] >= TOUCH_EVERY:
            self.store.touch_session(claims.session_id, now)
        return Claims(user_id=claims.user_id, username=user["username"], role=Role(user["role"]),
                      session_id=claims.session_id, expires_at=claims.expires_at,
                      jti=claims.jti)

    # -- sessions -----------------------------------------------------------------------------

    def logout(self, session_id: str) -> None:
        """Revoke a session (nothing happens if it is unknown or already revoked)."""
        self.store.revoke_sessions(self.clock.now(), family_id=session_id)

    def sessions(self, user_id: str) -> list[Session]:
        """A user's sessions, newest login first (revoked and expired ones included)."""
        return [self._session(r) for r in self.store.sessions(user_id)]

    def revoke_session(self, user_id: str, session_id: str) -> None:
        """Revoke one of a user's sessions; NotFound if it is not theirs."""
        row = self.store.session(session_id)
        if row is None or row["user_id"] != user_id:
            raise NotFound(f"no session {session_id!r} for this user")
        self.store.revoke_sessions(self.clock.now(), family_id=session_id)

    def revoke_all(self, user_id: str) -> int:
        """Revoke every session of a user; returns how many were still unrevoked."""
        return self.store.revoke_sessions(self.clock.now(), user_id=user_id)

    def _session(self, row: Mapping[str, Any]) -> Session:
        return Session(id=row["family_id"], user_id=row["user_id"],
                       created_at=row["created_at"], last_seen=row["last_seen"],
                       expires_at=row["expires_at"], revoked_at=row["revoked_at"],
                       user_agent=row["user_agent"], address=row["address"],
                       idle_timeout=self.settings.idle_timeout)

    # -- dashboards ---------------------------------------------------------------------------

    def create_dashboard(self, owner_id: str, name: str, spec: Mapping[str, Any], *,
                         workspace: str | None = None) -> Dashboard:
        """A new dashboard owned by ``owner_id`` in ``workspace`` (the service's when None;
        spec checked, see auth.dashboards)."""
        ws = workspace or self.workspace
        name, clean = check_name(name), check_spec(spec)
        self._user_row(owner_id)
        now = self.clock.now()
        doc = {"id": _new_id("dsh"), "owner_id": owner_id, "name": name, "spec": clean,
               "shared_with": [], "created_at": now, "updated_at": now}
        self.store.put_dashboard(ws, doc)
        return self._dashboard(doc, ws)

    def list_dashboards(self, user_id: str, *, workspace: str | None = None) -> list[Dashboard]:
        """Dashboards of ``workspace`` the user owns or that are shared with them, by name."""
        ws = workspace or self.workspace
        return [self._dashboard(d, ws) for d in self.store.dashboards(ws, visible_to=user_id)]

    def get_dashboard(self, user_id: str, dashboard_id: str, *,
                      workspace: str | None = None) -> Dashboard:
        """A dashboard the user owns or that is shared with them; NotFound otherwise (also
        for one of another workspace)."""
        ws = workspace or self.workspace
        return self._dashboard(self._visible(user_id, dashboard_id, ws), ws)

    def update_dashboard(self, user_id: str, dashboard_id: str, name: str | None = None,
                         spec: Mapping[str, Any] | None = None, *,
                         workspace: str | None = None) -> Dashboard:
        """Rename and/or replace the spec (owner only: Forbidden for a user it is shared
        with, NotFound for anyone else)."""
        ws = workspace or self.workspace
        doc = self._owned(user_id, dashboard_id, ws)
        if name is not None:
            doc["name"] = check_name(name)
        if spec is not None:
            doc["spec"] = check_spec(spec)
        doc["updated_at"] = self.clock.now()
        self.store.put_dashboard(ws, doc)
        return self._dashboard(doc, ws)

    def delete_dashboard(self, user_id: str, dashboard_id: str, *,
                         workspace: str | None = None) -> None:
        """Delete a dashboard (owner only, as update_dashboard)."""
        ws = workspace or self.workspace
        self._owned(user_id, dashboard_id, ws)
        self.store.delete_dashboard(ws, dashboard_id)

    def share_dashboard(self, owner_id: str, dashboard_id: str, user_ids: Iterable[str], *,
                        workspace: str | None = None) -> Dashboard:
        """Set who may read a dashboard (replaces the list; the owner is left out);
        NotFound naming unknown user ids, InputError naming users who are not members of
        the dashboard's workspace (they could never open it)."""
        ws = workspace or self.workspace
        doc = self._owned(owner_id, dashboard_id, ws)
        if isinstance(user_ids, str):
            raise InputError("user_ids must be a list of user ids, not one string")
        wanted = sorted({u for u in user_ids if u != owner_id})
        unknown = [u for u in wanted if self.store.user(u) is None]
        if unknown:
            raise NotFound(f"cannot share with unknown user id(s) {', '.join(unknown)}")
        outside = [u for u in wanted if self.role_in(u, ws) is None]
        if outside:
            raise InputError(f"cannot share with user id(s) {', '.join(outside)}: they are not "
                             f"members of workspace {ws!r} (add them first)")
        doc["shared_with"] = wanted
        doc["updated_at"] = self.clock.now()
        self.store.put_dashboard(ws, doc)
        return self._dashboard(doc, ws)

    def _visible(self, user_id: str, dashboard_id: str, workspace: str) -> dict[str, Any]:
        doc = self.store.dashboard(workspace, dashboard_id)
        if doc is None or (doc["owner_id"] != user_id and user_id not in doc["shared_with"]):
            raise NotFound(f"no dashboard {dashboard_id!r}")
        return doc

    def _owned(self, user_id: str, dashboard_id: str, workspace: str) -> dict[str, Any]:
        doc = self._visible(user_id, dashboard_id, workspace)
        if doc["owner_id"] != user_id:
            raise Forbidden(f"dashboard {dashboard_id!r} is shared read-only with you; only its "
                            "owner can change it")
        return doc

    def _dashboard(self, doc: Mapping[str, Any], workspace: str) -> Dashboard:
        return Dashboard(id=doc["id"], owner_id=doc["owner_id"], name=doc["name"],
                         spec=dict(doc["spec"]), shared_with=tuple(doc["shared_with"]),
                         created_at=doc["created_at"], updated_at=doc["updated_at"],
                         workspace=workspace)


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def _user(row: Mapping[str, Any]) -> User:
    doc = {**PROFILE_DEFAULTS, **row["doc"]}
    return User(id=row["id"], username=row["username"], role=Role(row["role"]),
                display_name=doc["display_name"], timezone=doc["timezone"], theme=doc["theme"],
                refresh_interval=int(doc["refresh_interval"]), followed=tuple(doc["followed"]),
                saved_filters={k: {d: list(v) for d, v in f.items()}
                               for k, f in doc["saved_filters"].items()},
                created_at=row["created_at"], disabled=bool(row["disabled"]))
