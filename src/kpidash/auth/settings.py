"""Authentication settings: one frozen value built by the API's configuration."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from kpidash.errors import ConfigError

# PyJWT warns about HMAC keys shorter than the hash output; refuse them instead
_MIN_SECRET_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}


@dataclass(frozen=True)
class AuthSettings:
    """How tokens are signed and how long they, sessions and login failures last.

    ``secret`` has no default on purpose: it signs every access token and must be a long
    random string (``python -c "import secrets; print(secrets.token_urlsafe(48))"``).
    ``refresh_ttl`` is the absolute lifetime of a login session (rotation does not extend
    it); ``idle_timeout`` ends a session not used for that long.
    """

    secret: str
    issuer: str = "kpidash"
    audience: str = "kpidash-api"
    access_ttl: timedelta = timedelta(minutes=15)
    refresh_ttl: timedelta = timedelta(days=30)
    idle_timeout: timedelta = timedelta(days=7)
    max_failures: int = 5
    failure_window: timedelta = timedelta(minutes=15)
    algorithm: str = "HS256"

    def __post_init__(self) -> None:
        if self.algorithm not in _MIN_SECRET_BYTES:
            raise ConfigError(f"auth algorithm must be one of {', '.join(_MIN_SECRET_BYTES)}, "
                              f"got {self.algorithm!r}")
        need = _MIN_SECRET_BYTES[self.algorithm]
        if not isinstance(self.secret, str) or len(self.secret.encode()) < need:
            got = len(self.secret.encode()) if isinstance(self.secret, str) else 0
            raise ConfigError(
                f"the auth secret must be at least {need} characters for {self.algorithm}, "
                f"got {got}; generate one with: python -c \"import secrets; "
                "print(secrets.token_urlsafe(48))\"")
        for name in ("access_ttl", "refresh_ttl", "idle_timeout", "failure_window"):
            value = getattr(self, name)
            if not isinstance(value, timedelta) or value <= timedelta(0):
                raise ConfigError(f"auth {name} must be a positive duration, got {value!r}")
        if isinstance(self.max_failures, bool) or not isinstance(self.max_failures, int) \
                or self.max_failures < 1:
            raise ConfigError(f"auth max_failures must be an integer ≥ 1, got "
                              f"{self.max_failures!r}")
        for name in ("issuer", "audience"):
            if not getattr(self, name):
                raise ConfigError(f"auth {name} must not be empty")
