"""Access tokens (signed JWTs) and refresh tokens (opaque random strings).

An access token carries ``sub`` (user id), ``name``, ``role``, ``sid`` (session id),
``iss``, ``aud``, ``iat``, ``exp`` (seconds since the epoch) and ``jti``; all are required, and
``aud``/``iss`` must be this server's. Time is checked against the injected clock's ``now`` —
PyJWT's own time checks read the system clock, so they are switched off and done here, with no
leeway (the same server issues and checks): refused once ``now ≥ exp``, and before ``iat``
or an ``nbf`` (not yet valid: issued "in the future", which only a forger or a clock set back
produces).

A refresh token is ``secrets.token_urlsafe(32)``; only its SHA-256 (hex) is stored.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any

import jwt

from kpidash.auth.models import Claims
from kpidash.auth.roles import Role
from kpidash.auth.settings import AuthSettings
from kpidash.errors import InvalidToken

_REQUIRED = ["sub", "name", "role", "sid", "iss", "aud", "iat", "exp", "jti"]
_MAX_TOKEN_LENGTH = 8192


def issue_access_token(settings: AuthSettings, now: datetime, *, user_id: str, username: str,
                       role: Role, session_id: str) -> tuple[str, Claims]:
    """A signed access token valid from ``now`` for ``settings.access_ttl``, and its claims."""
    iat = int(now.timestamp())
    exp = int((now + settings.access_ttl).timestamp())
    jti = secrets.token_hex(16)
    payload = {"sub": user_id, "name": username, "role": str(role), "sid": session_id,
               "iss": settings.issuer, "aud": settings.audience, "iat": iat, "exp": exp,
               "jti": jti}
    token = jwt.encode(payload, settings.secret, algorithm=settings.algorithm)
    return token, Claims(user_id=user_id, username=username, role=Role(role),
                         session_id=session_id, expires_at=datetime.fromtimestamp(exp, UTC),
                         jti=jti)


def decode_access_token(token: str, settings: AuthSettings, now: datetime) -> Claims:
    """The claims of a valid token; InvalidToken with a short reason (never the token) when
    it is malformed, signed with another key or algorithm (``none`` included), for another
    audience or issuer, expired at ``now`` or not yet valid then."""
    if not isinstance(token, str) or not token:
        raise InvalidToken("access token rejected: missing")
    if len(token) > _MAX_TOKEN_LENGTH:
        raise InvalidToken("access token rejected: too long")
    try:
        payload: dict[str, Any] = jwt.decode(
            token, settings.secret, algorithms=[settings.algorithm],
            audience=settings.audience, issuer=settings.issuer,
            options={"require": _REQUIRED, "verify_exp": False, "verify_iat": False,
                     "verify_nbf": False})
    except jwt.InvalidAlgorithmError:
        raise InvalidToken("access token rejected: algorithm not allowed") from None
    except jwt.InvalidSignatureError:
        raise InvalidToken("access token rejected: bad signature") from None
    except jwt.InvalidAudienceError:
        raise InvalidToken("access token rejected: wrong audience") from None
    except jwt.InvalidIssuerError:
        raise InvalidToken("access token rejected: wrong issuer") from None
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidToken(f"access token rejected: missing claim {exc.claim}") from None
    except jwt.PyJWTError:
        raise InvalidToken("access token rejected: malformed") from None
    exp, iat, role = payload["exp"], payload["iat"], payload["role"]
    nbf = payload.get("nbf", iat)
    strings = ("sub", "name", "sid", "jti")
    if (not all(_is_int(t) for t in (exp, iat, nbf))
            or not all(isinstance(payload[k], str) and payload[k] for k in strings)
            or role not in tuple(Role)):
        raise InvalidToken("access token rejected: malformed claims")
    if now.timestamp() >= exp:
        raise InvalidToken("access token rejected: expired")
    if now.timestamp() < max(iat, nbf):
        raise InvalidToken("access token rejected: not yet valid")
    return Claims(user_id=payload["sub"], username=payload["name"], role=Role(role),
                  session_id=payload["sid"], expires_at=datetime.fromtimestamp(exp, UTC),
                  jti=payload["jti"])


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def new_refresh_token() -> str:
    """A fresh opaque refresh token (256 random bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    """The SHA-256 (hex) under which a refresh token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()
