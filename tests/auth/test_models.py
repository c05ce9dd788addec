from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from kpidash.auth import Claims, Dashboard, Role, Session, SessionState, TokenPair, User

T0 = datetime(2024, 3, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def session(revoked: datetime | None = None, last_seen: datetime = T0) -> Session:
    return Session(id="ses_1", user_id="usr_1", created_at=T0, last_seen=last_seen,
                   expires_at=T0 + 30 * DAY, revoked_at=revoked, user_agent="ua",
                   address="10.0.0.1", idle_timeout=7 * DAY)


@pytest.mark.parametrize(("s", "now", "state"), [
    (session(), T0, SessionState.ACTIVE),
    (session(), T0 + 7 * DAY - timedelta(seconds=1), SessionState.ACTIVE),
    (session(), T0 + 7 * DAY, SessionState.EXPIRED),
    (session(last_seen=T0 + 25 * DAY), T0 + 29 * DAY, SessionState.ACTIVE),
    (session(last_seen=T0 + 25 * DAY), T0 + 30 * DAY, SessionState.EXPIRED),
    (session(revoked=T0 + DAY), T0 + 2 * DAY, SessionState.REVOKED),
    (session(revoked=T0 + DAY), T0 + 40 * DAY, SessionState.REVOKED),
], ids=["fresh", "just-before-idle", "idle", "used-recently", "absolute-expiry", "revoked",
        "revoked-wins"])
def test_session_state(s: Session, now: datetime, state: SessionState) -> None:
    assert s.state(now) is state
    assert s.state(now) == state.value


def test_to_dict_is_json_and_free_of_secrets() -> None:
    user = User(id="usr_1", username="ana", role=Role.ADMIN, display_name="Ana",
                timezone="Europe/Paris", theme="dark", refresh_interval=30,
                followed=("mrr", "churn"), saved_filters={"mrr": {"region": ["EU"]}},
                created_at=T0, disabled=False)
    values = [user, session(), TokenPair("a", "r", 900, "ses_1"),
              Claims("usr_1", "ana", Role.VIEWER, "ses_1", T0, "j"),
              Dashboard("dsh_1", "usr_1", "Main", {"kpis": ["mrr"]}, ("usr_2",), T0, T0,
                        "default")]
    for value in values:
        text = json.dumps(value.to_dict())
        assert "hash" not in text
    assert user.to_dict() == {
        "id": "usr_1", "username": "ana", "role": "admin", "display_name": "Ana",
        "timezone": "Europe/Paris", "theme": "dark", "refresh_interval": 30,
        "followed": ["mrr", "churn"], "saved_filters": {"mrr": {"region": ["EU"]}},
        "created_at": "2024-03-01T00:00:00+00:00", "disabled": False}
    assert TokenPair("a", "r", 900, "ses_1").to_dict() == {
        "access_token": "a", "refresh_token": "r", "token_type": "bearer", "expires_in": 900,
        "session_id": "ses_1"}
    assert session(revoked=T0).to_dict()["revoked_at"] == "2024-03-01T00:00:00+00:00"
