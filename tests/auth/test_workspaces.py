"""Workspaces and members in the accounts service: who may do what (server admin, workspace
admin, member, non-member), the last-admin guard, the default workspace, role_in and the
default membership of new users."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from kpidash.auth import Accounts, Role
from kpidash.clock import FixedClock
from kpidash.errors import Conflict, Forbidden, InputError, NotFound, ValidationFailed

from .conftest import PASSWORD

WS = "acme"


@dataclass
class World:
    acc: Accounts
    root: str  # server administrator (global admin), creator of WS
    boss: str  # admin member of WS
    ana: str  # analyst member of WS
    vic: str  # viewer member of WS
    out: str  # not a member of WS
    new: str  # another user, to be added


@pytest.fixture
def world(accounts: Accounts) -> World:
    ids = {name: accounts.create_user(name, PASSWORD, role).id for name, role in (
        ("root", "admin"), ("boss", "viewer"), ("ana", "viewer"), ("vic", "analyst"),
        ("out", "viewer"), ("new", "viewer"))}
    accounts.create_workspace(ids["root"], WS, "Acme Inc.", {"currency": "EUR"})
    for name, role in (("boss", "admin"), ("ana", "analyst"), ("vic", "viewer")):
        accounts.add_member(ids["root"], WS, ids[name], role)
    return World(accounts, **ids)


# -- the permissions matrix ------------------------------------------------------------------

ACTORS = ("root", "boss", "ana", "vic", "out")
Action = Callable[[World, str], Any]
ACTIONS: dict[str, Action] = {
    "rename": lambda w, a: w.acc.rename_workspace(a, WS, name="Acme 2"),
    "settings": lambda w, a: w.acc.rename_workspace(a, WS, settings={"currency": "JPY"}),
    "quotas": lambda w, a: w.acc.rename_workspace(a, WS, settings={"quotas": {"max_kpis": 9}}),
    "delete": lambda w, a: w.acc.delete_workspace(a, WS),
    "members": lambda w, a: w.acc.members(a, WS),
    "add_member": lambda w, a: w.acc.add_member(a, WS, w.new, Role.VIEWER),
    "change_role": lambda w, a: w.acc.add_member(a, WS, w.vic, "analyst"),
    "remove_member": lambda w, a: w.acc.remove_member(a, WS, w.ana),
    "get": lambda w, a: w.acc.get_workspace(a, WS),
}
# what each actor gets: None = allowed, else the error
EXPECTED: dict[str, dict[str, type[Exception] | None]] = {
    "rename": {"root": None, "boss": None, "ana": Forbidden, "vic": Forbidden, "out": NotFound},
    "settings": {"root": None, "boss": None, "ana": Forbidden, "vic": Forbidden,
                 "out": NotFound},
    "quotas": {"root": None, "boss": Forbidden, "ana": Forbidden, "vic": Forbidden,
               "out": NotFound},
    "delete": {"root": None, "boss": Forbidden, "ana": Forbidden, "vic": Forbidden,
               "out": NotFound},
    "members": {"root": None, "boss": None, "ana": Forbidden, "vic": Forbidden,
                "out": NotFound},
    "add_member": {"root": None, "boss": None, "ana": Forbidden, "vic": Forbidden,
                   "out": NotFound},
    "change_role": {"root": None, "boss": None, "ana": Forbidden, "vic": Forbidden,
                    "out": NotFound},
    "remove_member": {"root": None, "boss": None, "ana": Forbidden, "vic": Forbidden,
                      "out": NotFound},
    "get": {"root": None, "boss": None, "ana": None, "vic": None, "out": NotFound},
}


def snapshot(w: World) -> Any:
    s = w.acc.store
    return s.workspaces(), s.memberships(WS), s.memberships("default")


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_permissions(world: World, action: str, actor: str) -> None:
    who = getattr(world, actor)
    expected = EXPECTED[action][actor]
    if expected is None:
        ACTIONS[action](world, who)
        return
    before = snapshot(world)
    with pytest.raises(expected) as exc:
        ACTIONS[action](world, who)
    assert snapshot(world) == before
    if expected is NotFound:  # the same answer as for a workspace that does not exist
        assert str(exc.value) == f"no workspace {WS!r}"


def test_unknown_workspaces_are_not_found_even_for_server_admins(world: World) -> None:
    acc, root = world.acc, world.root
    for call in (lambda: acc.rename_workspace(root, "nope", name="x"),
                 lambda: acc.delete_workspace(root, "nope"),
                 lambda: acc.members(root, "nope"),
                 lambda: acc.add_member(root, "nope", world.new, "viewer"),
                 lambda: acc.remove_member(root, "nope", world.new),
                 lambda: acc.get_workspace(root, "nope")):
        with pytest.raises(NotFound, match="no workspace 'nope'"):
            call()


def test_a_non_member_cannot_tell_a_workspace_exists(world: World) -> None:
    acc, out = world.acc, world.out
    for ws in (WS, "nope"):
        with pytest.raises(NotFound) as exc:
            acc.members(out, ws)
        assert str(exc.value) == f"no workspace {ws!r}"
        with pytest.raises(NotFound) as exc:
            acc.delete_workspace(out, ws)
        assert str(exc.value) == f"no workspace {ws!r}"


# -- create, list, rename, delete -----------------------------------------------------------

def test_only_server_admins_create_workspaces(world: World) -> None:
    acc = world.acc
    for who in (world.boss, world.ana, world.vic, world.out):
        with pytest.raises(Forbidden, match="server administrator"):
            acc.create_workspace(who, "mine", "Mine")
    assert acc.store.workspace("mine") is None


def test_create_returns_the_record_and_makes_the_creator_admin(
        accounts: Accounts, clock: FixedClock) -> None:
    root = accounts.create_user("root", PASSWORD, "admin").id
    rec = accounts.create_workspace(root, "beta", "Beta", {"timezone": "Europe/Paris"})
    assert rec["id"] == "beta" and rec["name"] == "Beta" and rec["role"] == "admin"
    assert rec["settings"]["timezone"] == "Europe/Paris"
    assert rec["created_at"] == rec["updated_at"] == clock.now()
    assert accounts.store.memberships("beta") == [
        {"user_id": root, "role": "admin", "created_at": clock.now()}]
    with pytest.raises(Conflict, match="beta"):
        accounts.create_workspace(root, "beta", "Again")
    with pytest.raises(ValidationFailed):
        accounts.create_workspace(root, "Bad Id!", "Bad")
    with pytest.raises(ValidationFailed):
        accounts.create_workspace(root, "gamma", "Gamma", {"currency": "euros"})
    assert [w["id"] for w in accounts.store.workspaces()] == ["beta", "default"]


def test_list_workspaces(world: World) -> None:
    acc = world.acc
    acc.create_workspace(world.root, "beta", "Beta")
    assert [(w["id"], w["role"]) for w in acc.list_workspaces(world.root)] == [
        ("acme", "admin"), ("beta", "admin"), ("default", "admin")]
    assert [(w["id"], w["role"]) for w in acc.list_workspaces(world.ana)] == [
        ("acme", "analyst"), ("default", "viewer")]
    assert [(w["id"], w["role"]) for w in acc.list_workspaces(world.out)] == [
        ("default", "viewer")]
    got = acc.list_workspaces(world.boss)[0]
    assert got["name"] == "Acme Inc." and got["settings"]["currency"] == "EUR"
    acc.update_user(world.ana, disabled=True)
    assert acc.list_workspaces(world.ana) == []
    with pytest.raises(NotFound, match="no user"):
        acc.list_workspaces("usr_nobody")


def test_rename_keeps_other_settings_and_records_the_time(world: World,
                                                          clock: FixedClock) -> None:
    clock.advance(timedelta(hours=2))
    rec = world.acc.rename_workspace(world.boss, WS, name="Acme Europe",
                                     settings={"fiscal_year_start": 4})
    assert rec["name"] == "Acme Europe" and rec["role"] == "admin"
    assert rec["settings"]["currency"] == "EUR" and rec["settings"]["fiscal_year_start"] == 4
    assert rec["updated_at"] == clock.now() > rec["created_at"]
    with pytest.raises(ValidationFailed):
        world.acc.rename_workspace(world.boss, WS, settings={"default_theme": "neon"})


def test_only_a_server_admin_changes_quotas(world: World) -> None:
    acc, root, boss = world.acc, world.root, world.boss
    acc.rename_workspace(root, WS, settings={"quotas": {"max_points": 1000}})
    for change in ({"max_points": 5000}, {"max_points": None}, {"max_kpis": 3}):
        with pytest.raises(Forbidden, match="only a server administrator can change the "
                           "quotas of workspace 'acme'"):
            acc.rename_workspace(boss, WS, settings={"quotas": change, "currency": "JPY"})
    got = acc.get_workspace(boss, WS)["settings"]
    assert got["quotas"]["max_points"] == 1000 and got["currency"] == "EUR"  # nothing changed
    # the quotas it already has are no change (a client sending the whole settings back)
    rec = acc.rename_workspace(boss, WS, settings={**got, "currency": "JPY"})
    assert rec["settings"]["currency"] == "JPY" and rec["settings"]["quotas"] == got["quotas"]
    acc.rename_workspace(boss, WS, settings={"quotas": {"max_points": 1000}})
    with pytest.raises(ValidationFailed):  # invalid is reported as such, even to a non-admin
        acc.rename_workspace(boss, WS, settings={"quotas": {"max_points": 0}})
    rec = acc.rename_workspace(root, WS, settings={"quotas": {"ingest_points_per_minute": 60}})
    assert rec["settings"]["quotas"] == {"max_kpis": None, "max_points": 1000,
                                         "ingest_points_per_minute": 60}
    made = acc.create_workspace(root, "beta", "Beta", {"quotas": {"max_kpis": 5}})
    assert made["settings"]["quotas"]["max_kpis"] == 5


def test_delete_removes_everything_and_protects_default(world: World) -> None:
    acc, root = world.acc, world.root
    counts = acc.delete_workspace(root, WS)
    assert counts["memberships"] == 4 and counts["workspaces"] == 1
    assert acc.store.workspace(WS) is None and acc.store.memberships(WS) == []
    assert acc.role_in(world.boss, WS) is None
    with pytest.raises(Conflict, match="'default'"):
        acc.delete_workspace(root, "default")
    with pytest.raises(Forbidden):
        acc.delete_workspace(world.boss, "default")  # boss is a member of default
    assert acc.store.workspace("default") is not None


# -- members ---------------------------------------------------------------------------------

def test_members_and_roles(world: World, clock: FixedClock) -> None:
    acc = world.acc
    got = acc.members(world.boss, WS)
    assert [(m["username"], m["role"]) for m in got] == [
        ("ana", "analyst"), ("boss", "admin"), ("root", "admin"), ("vic", "viewer")]
    assert got[0] == {"user_id": world.ana, "username": "ana", "display_name": "",
                      "role": "analyst", "disabled": False, "joined_at": clock.now()}
    member = acc.add_member(world.boss, WS, world.new, "analyst")
    assert member["username"] == "new" and member["role"] == "analyst"
    assert acc.role_in(world.new, WS) is Role.ANALYST
    acc.add_member(world.boss, WS, world.new, Role.ADMIN)
    assert acc.role_in(world.new, WS) is Role.ADMIN
    acc.remove_member(world.boss, WS, world.new)
    assert acc.role_in(world.new, WS) is None
    with pytest.raises(NotFound, match="not a member"):
        acc.remove_member(world.boss, WS, world.new)
    with pytest.raises(NotFound, match="no user"):
        acc.add_member(world.boss, WS, "usr_nobody", "viewer")
    with pytest.raises(InputError, match="role must be one of"):
        acc.add_member(world.boss, WS, world.new, "owner")


def test_the_last_workspace_admin_cannot_be_removed_or_demoted(world: World) -> None:
    acc, root, boss = world.acc, world.root, world.boss
    acc.remove_member(boss, WS, root)  # boss stays admin
    before = acc.store.memberships(WS)
    with pytest.raises(Conflict, match="last admin of workspace 'acme'"):
        acc.remove_member(root, WS, boss)
    with pytest.raises(Conflict, match="last admin"):
        acc.add_member(root, WS, boss, "analyst")
    assert acc.store.memberships(WS) == before
    acc.add_member(boss, WS, world.ana, "admin")  # another admin: now boss may go
    acc.add_member(world.ana, WS, boss, "viewer")
    assert acc.role_in(boss, WS) is Role.VIEWER
    with pytest.raises(Conflict):
        acc.remove_member(root, WS, world.ana)


def test_a_disabled_admin_does_not_count_as_the_workspace_admin(world: World) -> None:
    acc = world.acc
    acc.remove_member(world.root, WS, world.root)
    acc.add_member(world.boss, WS, world.ana, "admin")
    acc.update_user(world.ana, disabled=True)
    with pytest.raises(Conflict, match="last admin"):
        acc.remove_member(world.root, WS, world.boss)


def test_server_admins_manage_workspaces_they_are_not_members_of(world: World) -> None:
    acc = world.acc
    other = acc.create_user("other", PASSWORD, "admin").id
    assert acc.role_in(other, WS) is Role.ADMIN
    acc.add_member(other, WS, world.new, "viewer")
    acc.rename_workspace(other, WS, name="By other")
    assert [m["user_id"] for m in acc.members(other, WS)].count(other) == 0


# -- role_in and the default workspace ------------------------------------------------------

def test_role_in(world: World) -> None:
    acc = world.acc
    assert acc.role_in(world.root, WS) is Role.ADMIN
    assert acc.role_in(world.boss, WS) is Role.ADMIN
    assert acc.role_in(world.ana, WS) is Role.ANALYST
    assert acc.role_in(world.vic, WS) is Role.VIEWER
    assert acc.role_in(world.out, WS) is None
    assert acc.role_in(world.root, "nope") is None  # server admins too: it does not exist
    assert acc.role_in("usr_nobody", WS) is None
    assert acc.role_in(world.vic, "default") is Role.ANALYST  # their global role
    acc.update_user(world.ana, disabled=True)
    assert acc.role_in(world.ana, WS) is None
    assert acc.is_server_admin(world.root) and not acc.is_server_admin(world.boss)


def test_new_users_join_default_with_their_role(accounts: Accounts, clock: FixedClock) -> None:
    u = accounts.create_user("ana", PASSWORD, "analyst")
    assert accounts.store.memberships("default") == [
        {"user_id": u.id, "role": "analyst", "created_at": clock.now()}]
    assert accounts.role_in(u.id, "default") is Role.ANALYST
    assert [w["id"] for w in accounts.list_workspaces(u.id)] == ["default"]


def test_a_refused_user_joins_nothing(accounts: Accounts) -> None:
    accounts.create_user("ana", PASSWORD)
    with pytest.raises(Conflict):
        accounts.create_user("ana", PASSWORD)
    assert len(accounts.store.memberships("default")) == 1


def test_role_changes_follow_into_default_only(world: World) -> None:
    acc = world.acc
    acc.update_user(world.ana, role="analyst")
    assert acc.role_in(world.ana, "default") is Role.ANALYST
    assert acc.role_in(world.ana, WS) is Role.ANALYST  # its own role, unchanged
    acc.update_user(world.ana, display_name="Ana")  # no role change: membership untouched
    assert acc.role_in(world.ana, "default") is Role.ANALYST
    acc.remove_member(world.root, "default", world.out)
    acc.update_user(world.out, role="analyst")  # removed from default: not re-added
    assert acc.role_in(world.out, "default") is None


def test_deleting_a_user_ends_their_memberships(world: World) -> None:
    world.acc.delete_user(world.ana)
    assert all(m["user_id"] != world.ana for ws in (WS, "default")
               for m in world.acc.store.memberships(ws))
