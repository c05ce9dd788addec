"""The accounts service on a real DuckDB store (memory and file), with a fixed clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from kpidash.auth import Accounts, Role, SessionState, TokenPair, User, decode_access_token
from kpidash.clock import FixedClock
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

from .conftest import PASSWORD

MIN = timedelta(minutes=1)
DAY = timedelta(days=1)


@pytest.fixture
def ana(accounts: Accounts) -> User:
    return accounts.create_user("ana", PASSWORD, role="analyst", display_name="Ana")


@pytest.fixture
def bo(accounts: Accounts) -> User:
    return accounts.create_user("bo", "another password")


def login(accounts: Accounts, name: str = "ana", password: str = PASSWORD,
          address: str = "10.0.0.1") -> TokenPair:
    return accounts.login(name, password, address=address, user_agent="pytest")


# -- users ------------------------------------------------------------------------------------


def test_create_and_read_users(accounts: Accounts, ana: User, clock: FixedClock) -> None:
    assert (ana.username, ana.role, ana.display_name, ana.timezone) == (
        "ana", Role.ANALYST, "Ana", "UTC")
    assert (ana.theme, ana.refresh_interval, ana.followed, ana.saved_filters) == (
        "corporate", 60, (), {})
    assert ana.created_at == clock.now() and not ana.disabled
    assert accounts.get_user(ana.id) == ana == accounts.get_user_by_name("ana")
    accounts.create_user("al", "0123456789", timezone="Europe/Paris")
    assert [u.username for u in accounts.list_users()] == ["al", "ana"]
    assert "password" not in str(ana.to_dict())
    with pytest.raises(NotFound):
        accounts.get_user("usr_nope")
    with pytest.raises(NotFound):
        accounts.get_user_by_name("nobody")


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"username": "Ana"}, InputError, "username must be"),
    ({"password": "short"}, InputError, "at least 10"),
    ({"username": "anastasia01", "password": "anastasia01"}, InputError, "not be the username"),
    ({"role": "root"}, InputError, "role must be one of"),
    ({"timezone": "Mars/Base"}, InputError, "IANA"),
    ({"username": "ana"}, Conflict, "username 'ana' is already taken"),
], ids=["bad-username", "weak-password", "password-is-username", "bad-role", "bad-timezone",
        "duplicate"])
def test_create_user_errors(accounts: Accounts, ana: User, kwargs: dict[str, Any],
                            error: type[Exception], match: str) -> None:
    args = {"username": "zed", "password": PASSWORD, **kwargs}
    with pytest.raises(error, match=match):
        accounts.create_user(**args)


def test_profile_updates(accounts: Accounts, ana: User, clock: FixedClock) -> None:
    clock.advance(MIN)
    got = accounts.update_user(ana.id, theme="dark", refresh_interval=15,
                               followed=["mrr", "churn"], timezone="Asia/Tokyo",
                               saved_filters={"mrr": {"region": ["EU"]}}, display_name="A.")
    assert (got.theme, got.refresh_interval, got.followed, got.timezone, got.display_name) == (
        "dark", 15, ("mrr", "churn"), "Asia/Tokyo", "A.")
    assert got.saved_filters == {"mrr": {"region": ["EU"]}}
    # untouched fields stay
    got = accounts.update_user(ana.id, theme="light")
    assert (got.theme, got.followed, got.role) == ("light", ("mrr", "churn"), Role.ANALYST)
    assert accounts.get_user(ana.id) == got
    assert accounts.update_user(ana.id) == got


@pytest.mark.parametrize(("changes", "match"), [
    ({"colour": "red", "theme": "dark"}, "unknown user field.*colour"),
    ({"password_hash": "x"}, "unknown user field.*password_hash"),
    ({"username": "other"}, "unknown user field.*username"),
    ({"theme": "neon"}, "theme must be one of"),
    ({"refresh_interval": 2}, "refresh_interval"),
    ({"followed": "mrr"}, "followed"),
    ({"saved_filters": {"mrr": {"region": "EU"}}}, "saved_filters.mrr.region"),
    ({"timezone": "Nowhere/Land"}, "timezone"),
], ids=lambda v: str(v)[:24])
def test_profile_validation_names_the_field(accounts: Accounts, ana: User,
                                            changes: dict[str, Any], match: str) -> None:
    with pytest.raises(InputError, match=match):
        accounts.update_user(ana.id, **changes)
    assert accounts.get_user(ana.id) == ana  # nothing written


def test_update_unknown_user(accounts: Accounts) -> None:
    with pytest.raises(NotFound):
        accounts.update_user("usr_nope", theme="dark")


def test_last_admin_is_kept(accounts: Accounts, ana: User) -> None:
    root = accounts.create_user("root", PASSWORD, role="admin")
    assert accounts.count_admins() == 1
    for change in ({"role": "viewer"}, {"disabled": True}):
        with pytest.raises(Conflict, match="last admin"):
            accounts.update_user(root.id, **change)
    with pytest.raises(Conflict, match="last admin"):
        accounts.delete_user(root.id)
    accounts.update_user(ana.id, role="admin")
    assert accounts.count_admins() == 2
    accounts.update_user(root.id, disabled=True)
    assert accounts.count_admins() == 1
    accounts.delete_user(root.id)  # a disabled admin is not counted
    assert accounts.count_admins() == 1


# -- login ------------------------------------------------------------------------------------


def test_login_happy_path(accounts: Accounts, ana: User, clock: FixedClock) -> None:
    pair = login(accounts)
    assert pair.token_type == "bearer" and pair.expires_in == 15 * 60
    claims = accounts.verify(pair.access_token)
    assert (claims.user_id, claims.username, claims.role, claims.session_id) == (
        ana.id, "ana", Role.ANALYST, pair.session_id)
    assert claims.expires_at == clock.now() + timedelta(minutes=15)
    [session] = accounts.sessions(ana.id)
    assert (session.id, session.user_agent, session.address) == (
        pair.session_id, "pytest", "10.0.0.1")
    assert session.expires_at == clock.now() + 30 * DAY
    assert session.state(clock.now()) is SessionState.ACTIVE
    # the refresh token is stored only as its hash
    row = accounts.store.session(pair.session_id)
    assert row is not None and pair.refresh_token not in str(row)


def test_login_is_case_insensitive_on_the_username(accounts: Accounts, ana: User) -> None:
    assert accounts.verify(login(accounts, "ANA").access_token).user_id == ana.id


def test_unknown_user_and_wrong_password_look_the_same(accounts: Accounts, ana: User) -> None:
    messages = []
    for name, password in (("nobody", PASSWORD), ("ana", "wrong password"), ("A B", "x"),
                           ("ana", "")):
        with pytest.raises(InvalidCredentials) as info:
            login(accounts, name, password, address=f"10.0.0.{len(messages)}")
        messages.append(str(info.value))
    assert len(set(messages)) == 1 and messages[0] == "wrong username or password"


def test_disabled_users_cannot_log_in_and_lose_their_sessions(accounts: Accounts, ana: User,
                                                                  ) -> None:
    pair = login(accounts)
    accounts.update_user(ana.id, disabled=True)
    with pytest.raises(InvalidCredentials, match="wrong username or password"):
        login(accounts)
    with pytest.raises(InvalidToken):
        accounts.verify(pair.access_token)
    with pytest.raises(InvalidToken):
        accounts.refresh(pair.refresh_token)
    accounts.update_user(ana.id, disabled=False)
    assert accounts.sessions(ana.id)[0].revoked_at is not None  # re-enabling does not revive
    login(accounts)


def test_rate_limit_per_username(accounts: Accounts, ana: User, clock: FixedClock) -> None:
    # max_failures = 3 within 15 minutes (see conftest)
    for n in range(3):
        with pytest.raises(InvalidCredentials):
            login(accounts, password="wrong password", address=f"10.0.1.{n}")
        clock.advance(MIN)
    # now = first failure + 3 min: the first leaves the window in 12 min
    with pytest.raises(RateLimited) as info:
        login(accounts, address="10.0.9.9")  # correct password, new address: still refused
    assert info.value.retry_after == 12 * 60
    assert "720 s" in str(info.value)
    clock.advance(timedelta(minutes=12) - timedelta(seconds=1))
    with pytest.raises(RateLimited) as info:
        login(accounts, address="10.0.9.9")
    assert info.value.retry_after == 1
    clock.advance(timedelta(seconds=1))
    login(accounts, address="10.0.9.9")
    # success cleared the username's failures: three fresh ones are needed again
    for _ in range(2):
        with pytest.raises(InvalidCredentials):
            login(accounts, password="wrong password", address="10.0.2.1")
    login(accounts, address="10.0.2.2")


def test_rate_limit_per_address(accounts: Accounts, ana: User, bo: User,
                                clock: FixedClock) -> None:
    for name in ("x1", "x2", "x3"):
        with pytest.raises(InvalidCredentials):
            login(accounts, name, address="6.6.6.6")
        clock.advance(timedelta(seconds=10))
    with pytest.raises(RateLimited) as info:
        login(accounts, address="6.6.6.6")  # even ana's right password from that address
    assert info.value.retry_after == 15 * 60 - 30
    login(accounts, address="10.0.0.1")  # ana elsewhere is fine
    accounts.login("bo", "another password", address="10.0.0.2")
    clock.advance(timedelta(seconds=15 * 60 - 30))
    login(accounts, address="6.6.6.6")


def test_unknown_users_are_rate_limited_too(accounts: Accounts) -> None:
    for n in range(3):
        with pytest.raises(InvalidCredentials):
            login(accounts, "ghost", address=f"10.1.0.{n}")
    with pytest.raises(RateLimited):
        login(accounts, "ghost", address="10.1.0.9")


def test_rehashes_outdated_password_hashes_on_login(accounts: Accounts, ana: User) -> None:
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    from kpidash.auth import Passwords

    stronger = Passwords(PasswordHash((Argon2Hasher(time_cost=2, memory_cost=2048,
                                                    parallelism=1),)))
    upgraded = Accounts(accounts.store, accounts.clock, accounts.settings, passwords=stronger)
    before = accounts.store.user(ana.id)
    upgraded.login("ana", PASSWORD, address="10.0.0.1")
    after = accounts.store.user(ana.id)
    assert before is not None and after is not None
    assert "m=1024,t=1" in before["password_hash"] and "m=2048,t=2" in after["password_hash"]


# -- refresh ----------------------------------------------------------------------------------


def test_refresh_rotates(accounts: Accounts, ana: User, clock: FixedClock) -> None:
    first = login(accounts)
    clock.advance(MIN)
    second = accounts.refresh(first.refresh_token, address="10.0.0.7")
    assert second.session_id == first.session_id
    assert second.refresh_token != first.refresh_token
    assert second.access_token != first.access_token
    assert accounts.verify(second.access_token).session_id == first.session_id
    third = accounts.refresh(second.refresh_token)
    assert accounts.verify(third.access_token).user_id == ana.id
    [session] = accounts.sessions(ana.id)
    assert session.address == "10.0.0.7" and session.last_seen == clock.now()


def test_reusing_a_rotated_refresh_token_revokes_the_session(accounts: Accounts, ana: User,
                                                             clock: FixedClock) -> None:
    first = login(accounts)
    other = login(accounts)  # another session of the same user is left alone
    second = accounts.refresh(first.refresh_token)
    clock.advance(MIN)
    with pytest.raises(TokenReused, match="revoked"):
        accounts.refresh(first.refresh_token)
    # the whole session is gone: the newest refresh token and its access token too
    with pytest.raises(InvalidToken, match="revoked"):
        accounts.refresh(second.refresh_token)
    with pytest.raises(InvalidToken, match="revoked"):
        accounts.verify(second.access_token)
    with pytest.raises(InvalidToken):
        accounts.verify(first.access_token)
    # the replayed token keeps being recognised as reused
    with pytest.raises(TokenReused):
        accounts.refresh(first.refresh_token)
    assert accounts.verify(other.access_token).session_id == other.session_id
    states = {s.id: s.state(clock.now()) for s in accounts.sessions(ana.id)}
    assert states == {first.session_id: "revoked", other.session_id: "active"}


@pytest.mark.parametrize("token", ["", "made-up-token", "x" * 43])
def test_unknown_refresh_tokens(accounts: Accounts, ana: User, token: str) -> None:
    with pytest.raises(InvalidToken) as info:
        accounts.refresh(token)
    assert not isinstance(info.value, TokenReused)


def test_idle_timeout(accounts: Accounts, ana: User, clock: FixedClock) -> None:
    pair = login(accounts)
    clock.advance(7 * DAY - MIN)
    pair = accounts.refresh(pair.refresh_token)  # used in time: the idle clock restarts
    clock.advance(7 * DAY - MIN)
    pair = accounts.refresh(pair.refresh_token)
    clock.advance(7 * DAY)
    with pytest.raises(InvalidToken, match="session expired"):
        accounts.refresh(pair.refresh_token)
    assert accounts.sessions(ana.id)[0].state(clock.now()) is SessionState.EXPIRED


def test_sessions_end_refresh_ttl_after_login(accounts: Accounts, ana: User,
                                              clock: FixedClock) -> None:
    pair = login(accounts)
    for _ in range(4):
        clock.advance(6 * DAY)
        pair = accounts.refresh(pair.refresh_token)
    clock.advance(6 * DAY - MIN)
    pair = accounts.refresh(pair.refresh_token)  # rotation does not extend the session
    clock.advance(MIN)
    assert clock.now() - accounts.sessions(ana.id)[0].created_at == 30 * DAY
    # the last access token is still within its 15 minutes, but the session is over
    with pytest.raises(InvalidToken, match="session expired"):
        accounts.verify(pair.access_token)
    with pytest.raises(InvalidToken, match="session expired"):
        accounts.refresh(pair.refresh_token)


def test_verify_touches_last_seen_at_most_once_a_minute(accounts: Accounts, ana: User,
                                                         clock: FixedClock) -> None:
    pair = login(accounts)
    start = clock.now()
    clock.advance(timedelta(seconds=59))
    accounts.verify(pair.access_token)
    assert accounts.sessions(ana.id)[0].last_seen == start
    clock.advance(timedelta(seconds=1))
    accounts.verify(pair.access_token)
    assert accounts.sessions(ana.id)[0].last_seen == start + MIN


def test_verify_uses_the_current_role(accounts: Accounts, ana: User) -> None:
    accounts.create_user("root", PASSWORD, role="admin")
    pair = login(accounts)
    accounts.update_user(ana.id, role="viewer")
    assert accounts.verify(pair.access_token).role is Role.VIEWER
    token_role = decode_access_token(pair.access_token, accounts.settings,
                                     accounts.clock.now()).role
    assert token_role is Role.ANALYST


def test_access_tokens_expire(accounts: Accounts, ana: User, clock: FixedClock) -> None:
    pair = login(accounts)
    clock.advance(timedelta(minutes=15))
    with pytest.raises(InvalidToken, match="expired"):
        accounts.verify(pair.access_token)
    accounts.verify(accounts.refresh(pair.refresh_token).access_token)


def test_verify_after_user_deletion_fails(accounts: Accounts, ana: User) -> None:
    pair = login(accounts)
    accounts.delete_user(ana.id)
    with pytest.raises(InvalidToken):
        accounts.verify(pair.access_token)
    with pytest.raises(InvalidToken):
        accounts.refresh(pair.refresh_token)
    with pytest.raises(NotFound):
        accounts.delete_user(ana.id)
    with pytest.raises(InvalidCredentials):
        login(accounts)


def test_set_password(accounts: Accounts, ana: User) -> None:
    pair = login(accounts)
    with pytest.raises(InputError, match="at least 10"):
        accounts.set_password(ana.id, "short")
    tall = accounts.create_user("anastasia01", PASSWORD)
    with pytest.raises(InputError, match="not be the username"):
        accounts.set_password(tall.id, "ANASTASIA01")
    accounts.set_password(ana.id, "brand new password")
    with pytest.raises(InvalidToken):
        accounts.verify(pair.access_token)
    with pytest.raises(InvalidCredentials):
        login(accounts)
    login(accounts, password="brand new password")
    with pytest.raises(NotFound):
        accounts.set_password("usr_nope", "brand new password")


# -- sessions ---------------------------------------------------------------------------------


def test_logout(accounts: Accounts, ana: User) -> None:
    pair = login(accounts)
    accounts.logout(pair.session_id)
    with pytest.raises(InvalidToken, match="session revoked"):
        accounts.verify(pair.access_token)
    with pytest.raises(InvalidToken, match="session revoked"):
        accounts.refresh(pair.refresh_token)
    accounts.logout(pair.session_id)  # twice is fine
    accounts.logout("ses_unknown")


def test_sessions_listing_and_revoke(accounts: Accounts, ana: User, bo: User,
                                     clock: FixedClock) -> None:
    a1 = login(accounts)
    clock.advance(MIN)
    a2 = login(accounts, address="10.0.0.2")
    clock.advance(MIN)
    b1 = accounts.login("bo", "another password", address="10.0.0.3")
    assert [s.id for s in accounts.sessions(ana.id)] == [a2.session_id, a1.session_id]
    assert accounts.sessions(ana.id)[0].address == "10.0.0.2"
    with pytest.raises(NotFound):
        accounts.revoke_session(ana.id, b1.session_id)  # not hers
    with pytest.raises(NotFound):
        accounts.revoke_session(ana.id, "ses_nope")
    accounts.verify(b1.access_token)
    accounts.revoke_session(ana.id, a1.session_id)
    with pytest.raises(InvalidToken):
        accounts.verify(a1.access_token)
    accounts.verify(a2.access_token)
    assert accounts.revoke_all(ana.id) == 1
    assert accounts.revoke_all(ana.id) == 0
    with pytest.raises(InvalidToken):
        accounts.verify(a2.access_token)
    assert all(s.state(clock.now()) == "revoked" for s in accounts.sessions(ana.id))
    accounts.verify(b1.access_token)


def test_a_token_for_another_users_session_is_refused(accounts: Accounts, ana: User, bo: User,
                                                      ) -> None:
    from kpidash.auth import issue_access_token

    b1 = accounts.login("bo", "another password", address="10.0.0.3")
    forged, _ = issue_access_token(accounts.settings, accounts.clock.now(), user_id=ana.id,
                                   username="ana", role=Role.ADMIN, session_id=b1.session_id)
    with pytest.raises(InvalidToken, match="session not found"):
        accounts.verify(forged)


# -- dashboards -------------------------------------------------------------------------------

SPEC = {"kpis": ["mrr"], "layout": [{"id": "mrr", "x": 0, "y": 0, "w": 4, "h": 3}],
        "range": {"last": "30d"}, "grain": "day"}


def test_dashboard_crud(accounts: Accounts, ana: User, clock: FixedClock) -> None:
    d = accounts.create_dashboard(ana.id, " Sales ", SPEC)
    assert (d.name, d.owner_id, d.spec, d.shared_with, d.workspace) == (
        "Sales", ana.id, SPEC, (), "default")
    assert d.created_at == d.updated_at == clock.now()
    assert accounts.get_dashboard(ana.id, d.id) == d
    clock.advance(MIN)
    d2 = accounts.update_dashboard(ana.id, d.id, name="Revenue")
    assert (d2.name, d2.spec, d2.created_at, d2.updated_at) == (
        "Revenue", SPEC, d.created_at, clock.now())
    d3 = accounts.update_dashboard(ana.id, d.id, spec={"theme": "dark"})
    assert (d3.name, d3.spec) == ("Revenue", {"theme": "dark"})
    e = accounts.create_dashboard(ana.id, "Alpha", {})
    assert [x.id for x in accounts.list_dashboards(ana.id)] == [e.id, d.id]
    accounts.delete_dashboard(ana.id, d.id)
    with pytest.raises(NotFound):
        accounts.get_dashboard(ana.id, d.id)
    with pytest.raises(NotFound):
        accounts.delete_dashboard(ana.id, d.id)


def test_dashboard_validation(accounts: Accounts, ana: User) -> None:
    with pytest.raises(InputError, match=r"unknown spec key.*zoom"):
        accounts.create_dashboard(ana.id, "x", {"zoom": 2})
    with pytest.raises(InputError, match="name must be"):
        accounts.create_dashboard(ana.id, "", {})
    with pytest.raises(NotFound):
        accounts.create_dashboard("usr_nope", "x", {})
    d = accounts.create_dashboard(ana.id, "x", {})
    with pytest.raises(InputError, match=r"layout\[0\]"):
        accounts.update_dashboard(ana.id, d.id, spec={"layout": [{"id": "a"}]})
    assert accounts.get_dashboard(ana.id, d.id) == d


def test_sharing_and_ownership(accounts: Accounts, ana: User, bo: User) -> None:
    cy = accounts.create_user("cy", PASSWORD)
    d = accounts.create_dashboard(ana.id, "Shared", SPEC)
    # not shared: bo cannot even learn it exists
    for call in (lambda: accounts.get_dashboard(bo.id, d.id),
                 lambda: accounts.update_dashboard(bo.id, d.id, name="mine"),
                 lambda: accounts.delete_dashboard(bo.id, d.id),
                 lambda: accounts.share_dashboard(bo.id, d.id, [bo.id])):
        with pytest.raises(NotFound, match="no dashboard"):
            call()
    assert accounts.list_dashboards(bo.id) == []
    shared = accounts.share_dashboard(ana.id, d.id, [bo.id, bo.id, ana.id])
    assert shared.shared_with == (bo.id,)
    assert accounts.get_dashboard(bo.id, d.id) == shared
    assert [x.id for x in accounts.list_dashboards(bo.id)] == [d.id]
    # shared means read-only
    for call in (lambda: accounts.update_dashboard(bo.id, d.id, name="mine"),
                 lambda: accounts.delete_dashboard(bo.id, d.id),
                 lambda: accounts.share_dashboard(bo.id, d.id, [cy.id])):
        with pytest.raises(Forbidden, match="shared read-only"):
            call()
    with pytest.raises(NotFound, match="usr_ghost"):
        accounts.share_dashboard(ana.id, d.id, [cy.id, "usr_ghost"])
    assert accounts.get_dashboard(ana.id, d.id).shared_with == (bo.id,)
    with pytest.raises(InputError):
        accounts.share_dashboard(ana.id, d.id, cy.id)
    # the list is replaced
    accounts.share_dashboard(ana.id, d.id, [cy.id])
    with pytest.raises(NotFound):
        accounts.get_dashboard(bo.id, d.id)
    accounts.get_dashboard(cy.id, d.id)
    # deleting a user removes them from shares and deletes what they own
    own = accounts.create_dashboard(cy.id, "Cy's", {})
    accounts.delete_user(cy.id)
    assert accounts.get_dashboard(ana.id, d.id).shared_with == ()
    with pytest.raises(NotFound):
        accounts.get_dashboard(cy.id, own.id)


def test_dashboards_are_per_workspace(accounts: Accounts, ana: User) -> None:
    accounts.store.ensure_workspace("acme")
    acme = Accounts(accounts.store, accounts.clock, accounts.settings, workspace="acme",
                    passwords=accounts.passwords)
    d = acme.create_dashboard(ana.id, "Acme board", {})
    assert d.workspace == "acme" and acme.get_dashboard(ana.id, d.id) == d
    assert accounts.list_dashboards(ana.id) == []
    with pytest.raises(NotFound):
        accounts.get_dashboard(ana.id, d.id)
    # users are global
    assert acme.get_user(ana.id) == ana
