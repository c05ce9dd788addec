"""Password hashing (argon2id through pwdlib) and the password policy."""

from __future__ import annotations

from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError

from kpidash.errors import InputError

MIN_LENGTH = 10
MAX_LENGTH = 1024  # hashing megabytes of "password" is a cheap way to burn our CPU


def check_password(password: str, username: str = "") -> None:
    """Raise InputError saying why ``password`` is not acceptable: it needs at least
    MIN_LENGTH (10) characters, at most MAX_LENGTH, and must differ from the username."""
    if not isinstance(password, str):
        raise InputError(f"password must be a string, got {type(password).__name__}")
    if len(password) < MIN_LENGTH:
        raise InputError(f"password too short: it needs at least {MIN_LENGTH} characters, "
                         f"got {len(password)}")
    if len(password) > MAX_LENGTH:
        raise InputError(f"password too long: at most {MAX_LENGTH} characters, got "
                         f"{len(password)}")
    if username and password.casefold() == username.casefold():
        raise InputError("password must not be the username; choose another")


class Passwords:
    """Hash and verify passwords. The default is pwdlib's recommended argon2id; tests may
    pass a cheaper ``PasswordHash`` (stored hashes carry their own parameters, and
    :meth:`verify_and_update` says when one should be rehashed with the current ones)."""

    def __init__(self, hasher: PasswordHash | None = None) -> None:
        self._hasher = hasher or PasswordHash.recommended()
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        """A salted argon2id hash (different on every call)."""
        return self._hasher.hash(password)

    def verify(self, password: str, hashed: str) -> bool:
        """True if ``password`` matches ``hashed``; an unrecognised hash never matches."""
        return self.verify_and_update(password, hashed)[0]

    def verify_and_update(self, password: str, hashed: str) -> tuple[bool, str | None]:
        """(matches, a new hash to store when the old one used outdated parameters)."""
        try:
            return self._hasher.verify_and_update(password, hashed)
        except UnknownHashError:
            return False, None

    def dummy_verify(self, password: str) -> None:
        """Spend the time of one verification (for unknown users, so timing tells nothing)."""
        if self._dummy is None:
            self._dummy = self._hasher.hash("kpidash dummy password")
        self._hasher.verify(password, self._dummy)


_default: Passwords | None = None


def _passwords() -> Passwords:
    global _default
    if _default is None:
        _default = Passwords()
    return _default


def hash_password(password: str) -> str:
    """Hash with the default (recommended argon2id) hasher."""
    return _passwords().hash(password)


def verify_password(password: str, hashed: str) -> bool:
    """Check a password against a stored hash with the default hasher."""
    return _passwords().verify(password, hashed)
