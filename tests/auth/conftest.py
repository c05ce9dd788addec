"""Fixtures for the accounts service: settings, a cheap password hasher, Accounts on DuckDB."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from kpidash.auth import Accounts, AuthSettings, Passwords
from kpidash.clock import FixedClock
from kpidash.store.base import Store

SECRET = "s" * 20 + "-test-secret-0123456789"  # 43 characters

# argon2id with tiny parameters: the real ones cost ~0.1 s per hash, and these tests hash a lot
CHEAP = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))
PASSWORD = "correct horse battery"


@pytest.fixture
def settings() -> AuthSettings:
    return AuthSettings(secret=SECRET, max_failures=3, failure_window=timedelta(minutes=15))


@pytest.fixture
def passwords() -> Passwords:
    return Passwords(CHEAP)


@pytest.fixture
def accounts(store: Store, clock: FixedClock, settings: AuthSettings,
             passwords: Passwords) -> Accounts:
    return Accounts(store, clock, settings, passwords=passwords)
