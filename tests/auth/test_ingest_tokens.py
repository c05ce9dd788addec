"""Ingest tokens in the accounts service: who may create, list and revoke them; the secret
shown once and stored as a hash; verification refusing unknown, revoked and expired tokens
(and those of a deleted workspace); last_used_at touched at most once a minute."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from kpidash.auth import Accounts
from kpidash.auth.ingest_tokens import (
    INGEST_TOKEN_PREFIX,
    MAX_ACTIVE_TOKENS,
    IngestGrant,
    hash_ingest_secret,
)
from kpidash.clock import FixedClock
from kpidash.errors import Conflict, Forbidden, InputError, InvalidToken, NotFound

from .conftest import PASSWORD

WS = "acme"


@dataclass
class World:
    acc: Accounts
    clock: FixedClock
    root: str  # server administrator, creator of WS
    boss: str  # admin member of WS
    ana: str  # analyst member of WS
    vic: str  # viewer member of WS
    out: str  # not a member of WS


@pytest.fixture
def world(accounts: Accounts, clock: FixedClock) -> World:
    ids = {name: accounts.create_user(name, PASSWORD, role).id for name, role in (
        ("root", "admin"), ("boss", "viewer"), ("ana", "viewer"), ("vic", "viewer"),
        ("out", "viewer"))}
    accounts.create_workspace(ids["root"], WS, "Acme")
    for name, role in (("boss", "admin"), ("ana", "analyst"), ("vic", "viewer")):
        accounts.add_member(ids["root"], WS, ids[name], role)
    return World(accounts, clock, **ids)


# -- who may manage tokens ---------------------------------------------------------------------

Action = Callable[[World, str, str], Any]
ACTIONS: dict[str, Action] = {
    "create": lambda w, a, tid: w.acc.create_ingest_token(a, WS, "telegraf"),
    "list": lambda w, a, tid: w.acc.list_ingest_tokens(a, WS),
    "revoke": lambda w, a, tid: w.acc.revoke_ingest_token(a, WS, tid),
}
EXPECTED = {"root": None, "boss": None, "ana": Forbidden, "vic": Forbidden, "out": NotFound}


@pytest.mark.parametrize("action", sorted(ACTIONS))
@pytest.mark.parametrize("actor", sorted(EXPECTED))
def test_only_workspace_and_server_admins_manage_tokens(world: World, actor: str,
                                                        action: str) -> None:
    tid = world.acc.create_ingest_token(world.root, WS, "existing").token.id
    before = world.acc.list_ingest_tokens(world.root, WS)
    error = EXPECTED[actor]
    if error is None:
        ACTIONS[action](world, getattr(world, actor), tid)
        return
    with pytest.raises(error) as exc:
        ACTIONS[action](world, getattr(world, actor), tid)
    message = str(exc.value)
    assert WS in message
    if error is Forbidden:
        assert "admin" in message
    assert world.acc.list_ingest_tokens(world.root, WS) == before  # nothing changed


def test_an_unknown_workspace_is_not_found_even_for_server_admins(world: World) -> None:
    with pytest.raises(NotFound, match="nope"):
        world.acc.create_ingest_token(world.root, "nope", "telegraf")


# -- the secret ----------------------------------------------------------------------------------

def test_the_secret_is_returned_once_and_stored_as_its_hash(world: World) -> None:
    issued = world.acc.create_ingest_token(world.boss, WS, "  telegraf-eu  ")
    secret = issued.secret
    assert secret.startswith(INGEST_TOKEN_PREFIX) and len(secret) >= 40
    t = issued.token
    assert (t.workspace, t.name, t.created_by, t.state) == (WS, "telegraf-eu", world.boss,
                                                          "active")
    assert (t.created_at, t.last_used_at, t.revoked_at, t.expires_at) == (
        world.clock.now(), None, None, None)
    assert issued.to_dict()["token"] == secret
    listed = world.acc.list_ingest_tokens(world.boss, WS)
    assert listed == [t]
    assert secret not in repr(listed) and "token" not in listed[0].to_dict()
    store = world.acc.store
    con = store._con  # type: ignore[attr-defined]
    stored = con.execute("SELECT token_hash FROM ingest_tokens").fetchall()
    assert stored == [(hash_ingest_secret(secret),)]
    other = world.acc.create_ingest_token(world.boss, WS, "batch").secret
    assert other != secret


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, "line\nbreak", 7, None])
def test_bad_names_are_refused(world: World, name: Any) -> None:
    with pytest.raises(InputError, match="name"):
        world.acc.create_ingest_token(world.boss, WS, name)
    assert world.acc.list_ingest_tokens(world.boss, WS) == []


def test_expiry_must_be_aware_and_in_the_future(world: World) -> None:
    now = world.clock.now()
    with pytest.raises(InputError, match="future"):
        world.acc.create_ingest_token(world.boss, WS, "t", now)
    with pytest.raises(InputError, match="time zone"):
        world.acc.create_ingest_token(world.boss, WS, "t", now.replace(tzinfo=None))
    issued = world.acc.create_ingest_token(world.boss, WS, "t", now + timedelta(days=30))
    assert issued.token.expires_at == now + timedelta(days=30)


def test_a_workspace_holds_a_bounded_number_of_active_tokens(world: World) -> None:
    acc = world.acc
    ids = [acc.create_ingest_token(world.boss, WS, f"t{i}").token.id
           for i in range(MAX_ACTIVE_TOKENS)]
    with pytest.raises(Conflict, match="revoke"):
        acc.create_ingest_token(world.boss, WS, "one too many")
    acc.revoke_ingest_token(world.boss, WS, ids[0])
    acc.create_ingest_token(world.boss, WS, "fits again")


# -- verification --------------------------------------------------------------------------------

def test_verify_gives_the_workspace_and_token(world: World) -> None:
    issued = world.acc.create_ingest_token(world.boss, WS, "telegraf")
    grant = world.acc.verify_ingest_token(issued.secret)
    assert grant == IngestGrant(workspace=WS, token_id=issued.token.id, name="telegraf",
                                expires_at=None)
    assert str(grant.role) == "analyst"


@pytest.mark.parametrize("secret", [
    "", "kpi_", "kpi_unknown", "not-an-ingest-token", "kpi_" + "x" * 400, None, 12])
def test_unknown_secrets_are_refused(world: World, secret: Any) -> None:
    world.acc.create_ingest_token(world.boss, WS, "telegraf")
    with pytest.raises(InvalidToken, match="not recognised"):
        world.acc.verify_ingest_token(secret)


def test_a_revoked_token_is_refused_at_once_and_stays_listed(world: World) -> None:
    acc = world.acc
    issued = acc.create_ingest_token(world.boss, WS, "telegraf")
    acc.verify_ingest_token(issued.secret)
    world.clock.advance(timedelta(minutes=5))
    revoked = acc.revoke_ingest_token(world.root, WS, issued.token.id)
    assert (revoked.state, revoked.revoked_at) == ("revoked", world.clock.now())
    with pytest.raises(InvalidToken, match="revoked"):
        acc.verify_ingest_token(issued.secret)
    world.clock.advance(timedelta(minutes=5))
    again = acc.revoke_ingest_token(world.boss, WS, issued.token.id)  # no change
    assert again.revoked_at == revoked.revoked_at
    assert acc.list_ingest_tokens(world.boss, WS) == [again]
    with pytest.raises(NotFound, match="itk_nope"):
        acc.revoke_ingest_token(world.boss, WS, "itk_nope")


def test_an_expired_token_is_refused_from_its_expiry_on(world: World) -> None:
    acc = world.acc
    expires = world.clock.now() + timedelta(days=1)
    issued = acc.create_ingest_token(world.boss, WS, "nightly", expires)
    world.clock.advance(timedelta(days=1) - timedelta(microseconds=1))
    assert acc.verify_ingest_token(issued.secret).expires_at == expires
    world.clock.advance(timedelta(microseconds=1))
    with pytest.raises(InvalidToken, match="expired"):
        acc.verify_ingest_token(issued.secret)
    assert acc.list_ingest_tokens(world.boss, WS)[0].state == "expired"


def test_last_used_is_touched_at_most_once_a_minute(world: World) -> None:
    acc, clock = world.acc, world.clock
    issued = acc.create_ingest_token(world.boss, WS, "telegraf")
    start = clock.now()

    def last_used() -> Any:
        return acc.list_ingest_tokens(world.boss, WS)[0].last_used_at

    acc.verify_ingest_token(issued.secret)
    assert last_used() == start
    clock.advance(timedelta(seconds=59))
    acc.verify_ingest_token(issued.secret)
    assert last_used() == start
    clock.advance(timedelta(seconds=1))
    acc.verify_ingest_token(issued.secret)
    assert last_used() == start + timedelta(minutes=1)


def test_tokens_go_with_their_workspace_and_outlive_their_creator(world: World) -> None:
    acc = world.acc
    kept = acc.create_ingest_token(world.boss, WS, "telegraf")
    acc.create_workspace(world.root, "beta", "Beta")
    gone = acc.create_ingest_token(world.root, "beta", "beta's")
    # the token belongs to the workspace: removing its creator does not revoke it
    acc.remove_member(world.root, WS, world.boss)
    assert acc.verify_ingest_token(kept.secret).workspace == WS
    assert acc.delete_workspace(world.root, "beta")["ingest_tokens"] == 1
    with pytest.raises(InvalidToken, match="not recognised"):
        acc.verify_ingest_token(gone.secret)
    assert acc.verify_ingest_token(kept.secret).workspace == WS
