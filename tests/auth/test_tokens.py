from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kpidash.auth import (
    AuthSettings,
    Role,
    decode_access_token,
    hash_refresh_token,
    issue_access_token,
    new_refresh_token,
)
from kpidash.errors import InvalidToken

NOW = datetime(2024, 3, 1, 12, tzinfo=UTC)
SETTINGS = AuthSettings(secret="k" * 40)
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def issue(settings: AuthSettings = SETTINGS, now: datetime = NOW) -> str:
    token, _ = issue_access_token(settings, now, user_id="usr_1", username="ana",
                                  role=Role.ANALYST, session_id="ses_1")
    return token


def b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def payload(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def test_round_trip_carries_every_claim() -> None:
    token, claims = issue_access_token(SETTINGS, NOW, user_id="usr_1", username="ana",
                                       role=Role.ANALYST, session_id="ses_1")
    body = payload(token)
    assert set(body) == {"sub", "name", "role", "sid", "iss", "aud", "iat", "exp", "jti"}
    assert (body["sub"], body["name"], body["role"], body["sid"]) == (
        "usr_1", "ana", "analyst", "ses_1")
    assert (body["iss"], body["aud"]) == ("kpidash", "kpidash-api")
    assert body["exp"] - body["iat"] == 15 * 60
    assert decode_access_token(token, SETTINGS, NOW) == claims
    assert claims.expires_at == NOW + timedelta(minutes=15)
    assert claims.role is Role.ANALYST and len(claims.jti) == 32


def test_every_token_has_its_own_jti() -> None:
    assert payload(issue())["jti"] != payload(issue())["jti"]


def test_expiry_follows_the_given_clock_not_the_system_one() -> None:
    token = issue()
    exp = NOW + timedelta(minutes=15)
    decode_access_token(token, SETTINGS, exp - timedelta(seconds=1))
    with pytest.raises(InvalidToken, match="expired"):
        decode_access_token(token, SETTINGS, exp)
    # issued "in the future" of the system clock is fine: only the injected clock counts
    future = datetime(2999, 1, 1, tzinfo=UTC)
    decode_access_token(issue(now=future), SETTINGS, future)


def _tampered_signature() -> str:
    head, body, sig = issue().split(".")
    return f"{head}.{body}.{('A' if sig[0] != 'A' else 'B')}{sig[1:]}"


def _tampered_payload() -> str:
    head, _, sig = issue().split(".")
    forged = {**payload(issue()), "role": "admin"}
    return f"{head}.{b64(forged)}.{sig}"


def _alg_none() -> str:
    head = b64({"alg": "none", "typ": "JWT"})
    return f"{head}.{b64(payload(issue()))}."


def _alg_none_with_signature() -> str:
    head = b64({"alg": "none", "typ": "JWT"})
    return f"{head}.{b64(payload(issue()))}.{issue().split('.')[2]}"


def _reencoded(**changes: Any) -> str:
    return jwt.encode({**payload(issue()), **changes}, SETTINGS.secret, algorithm="HS256")


CASES = {
    "expired": (lambda: issue(now=NOW - timedelta(hours=1)), "expired"),
    "tampered-signature": (_tampered_signature, "bad signature"),
    "tampered-payload": (_tampered_payload, "bad signature"),
    "alg-none": (_alg_none, "algorithm not allowed"),
    "alg-none-signed": (_alg_none_with_signature, "algorithm not allowed"),
    "wrong-key": (lambda: issue(AuthSettings(secret="w" * 40)), "bad signature"),
    "other-hmac": (lambda: issue(AuthSettings(secret="k" * 64, algorithm="HS512")),
                   "algorithm not allowed"),
    "wrong-audience": (lambda: issue(AuthSettings(secret="k" * 40, audience="other")),
                       "wrong audience"),
    "wrong-issuer": (lambda: issue(AuthSettings(secret="k" * 40, issuer="evil")),
                     "wrong issuer"),
    "missing-sid": (lambda: jwt.encode({k: v for k, v in payload(issue()).items() if k != "sid"},
                                       SETTINGS.secret, algorithm="HS256"), "missing claim sid"),
    "bad-role": (lambda: _reencoded(role="root"), "malformed claims"),
    "float-exp": (lambda: _reencoded(exp=9.9e9), "malformed claims"),
    "issued-in-the-future": (lambda: issue(now=NOW + timedelta(seconds=1)), "not yet valid"),
    "not-before-later": (lambda: _reencoded(nbf=int(NOW.timestamp()) + 60), "not yet valid"),
    "string-iat": (lambda: _reencoded(iat=str(int(NOW.timestamp()))), "malformed claims"),
    "bool-nbf": (lambda: _reencoded(nbf=True), "malformed claims"),
    "garbage": (lambda: "not.a.token", "malformed"),
    "empty": (lambda: "", "missing"),
    "huge": (lambda: "a" * 10_000, "too long"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_tokens_are_rejected_with_a_short_reason(case: str) -> None:
    make, reason = CASES[case]
    token = make()
    with pytest.raises(InvalidToken, match=reason) as info:
        decode_access_token(token, SETTINGS, NOW)
    assert str(info.value).startswith("access token rejected: ")
    if len(token) > 8:
        assert token not in str(info.value) and token.split(".")[0] not in str(info.value)


@given(st.data())
def test_any_change_to_the_payload_is_caught(data: st.DataObject) -> None:
    head, body, sig = issue().split(".")
    pos = data.draw(st.integers(0, len(body) - 2))  # the last character may carry pad bits
    char = data.draw(st.sampled_from([c for c in ALPHABET if c != body[pos]]))
    forged = f"{head}.{body[:pos]}{char}{body[pos + 1:]}.{sig}"
    with pytest.raises(InvalidToken):
        decode_access_token(forged, SETTINGS, NOW)


def test_refresh_tokens_are_random_and_stored_as_sha256() -> None:
    tokens = {new_refresh_token() for _ in range(50)}
    assert len(tokens) == 50 and all(len(t) == 43 for t in tokens)
    t = new_refresh_token()
    digest = hash_refresh_token(t)
    assert len(digest) == 64 and t not in digest and digest == hash_refresh_token(t)
    assert hash_refresh_token("abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
