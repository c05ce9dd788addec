"""The one exception tree of kpidash.

::

    KpidashError                      base: every error kpidash raises on purpose
    ├── ConfigError                   settings, paths, options that cannot work
    ├── InputError                    a data file given to a command is malformed (names the row)
    ├── ValidationFailed              input checked at a boundary failed; carries a Report
    │   ├── RegistryInvalid           KPI definitions (YAML, Python, packs)
    │   ├── RulesInvalid              alert rule definitions
    │   └── BatchRejected             a batch of points; nothing of it was written
    ├── AlertError                    an alert operation that cannot be done as asked
    │   └── IllegalTransition         a lifecycle move the alert state machine does not allow
    ├── NotFound                      a named thing (KPI, workspace) does not exist
    ├── Conflict                      it already exists (a username, an id)
    ├── AuthError                     who you are could not be established
    │   ├── InvalidCredentials        wrong username or password (never says which)
    │   ├── InvalidToken              missing, expired, tampered or revoked token
    │   ├── TokenReused               an old refresh token came back: its session is revoked
    │   └── RateLimited               too many failed logins; ``retry_after`` seconds
    ├── Forbidden                     you are known but may not do this
    ├── QuotaExceeded                 a workspace quota refuses the request; ``retry_after`` s
    ├── QueryError                    a query that cannot be answered as asked
    └── StoreError                    the storage backend failed or is incompatible
        ├── SchemaVersionError        the database was written by a newer kpidash
        └── StoreUnavailable          the database server cannot be reached; ``retry_after`` s

Messages say what was expected, what came, and how to fix it. No HTTP codes live here:
the API layer maps these classes to responses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kpidash.core.report import Report


class KpidashError(Exception):
    """Base class of every error kpidash raises on purpose."""


class ConfigError(KpidashError):
    """A setting, path or option that cannot work."""


class InputError(KpidashError):
    """A data file given to a command is malformed; the message names the row and field."""


class ValidationFailed(KpidashError):
    """Input failed validation; ``report`` lists every problem found, not just the first."""

    def __init__(self, message: str, report: Report) -> None:
        super().__init__(message)
        self.report = report

    def __str__(self) -> str:
        head = super().__str__()
        return f"{head}: {self.report.summary()}"


class RegistryInvalid(ValidationFailed):
    """KPI definitions are invalid."""


class RulesInvalid(ValidationFailed):
    """Alert rule definitions are invalid; ``report`` lists every problem."""


class BatchRejected(ValidationFailed):
    """A batch of points was rejected as a whole; nothing from it was written."""


class AlertError(KpidashError):
    """An alert operation that cannot be done as asked."""


class IllegalTransition(AlertError):
    """A lifecycle move that the alert state machine does not allow."""


class NotFound(KpidashError):
    """A named thing does not exist."""


class Conflict(KpidashError):
    """The thing to create already exists."""


class AuthError(KpidashError):
    """Authentication failed."""


class InvalidCredentials(AuthError):
    """Wrong username or password; the message never says which."""


class InvalidToken(AuthError):
    """A token that is missing, expired, tampered with, or revoked."""


class TokenReused(InvalidToken):
    """A rotated-out refresh token was presented: its whole session has been revoked."""


class RateLimited(AuthError):
    """Too many attempts; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Forbidden(KpidashError):
    """The caller is known but their role or ownership does not allow this."""


class QuotaExceeded(KpidashError):
    """A workspace quota (KPIs, stored points, ingest rate) refuses the request; nothing of
    it was done. ``retry_after`` seconds: when the rate allows it again, or a long wait for a
    limit that only deleting data or a raised quota cures."""

    def __init__(self, message: str, retry_after: int, *, workspace: str, quota: str,
                 limit: int, needed: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.workspace = workspace
        self.quota = quota
        self.limit = limit
        self.needed = needed


class QueryError(KpidashError):
    """A query cannot be answered as asked."""


class StoreError(KpidashError):
    """The storage backend failed or is incompatible."""


class SchemaVersionError(StoreError):
    """The database schema is newer than this kpidash understands."""


class StoreUnavailable(StoreError):
    """The database server cannot be reached (down, restarting, connection lost); the
    store reconnects by itself, so the same request may succeed after ``retry_after``
    seconds. A write it interrupted was either committed whole or not at all."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def bad_byte(exc: UnicodeDecodeError) -> str:
    """Where text is not UTF-8, for a message that shows what came: ``byte 12 is b'\\xff'``."""
    return f"byte {exc.start} is {bytes(exc.object[exc.start:exc.start + 1])!r}"
