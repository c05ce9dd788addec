"""DuckDB schema: one list of statements per version, applied in order on open."""

from __future__ import annotations

SCHEMA_VERSION = 10

MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE workspaces (id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL,
               settings JSON NOT NULL DEFAULT '{}', created_at TIMESTAMPTZ NOT NULL)""",
        """CREATE TABLE kpis (workspace_id VARCHAR NOT NULL, kpi_id VARCHAR NOT NULL,
               definition JSON NOT NULL, updated_at TIMESTAMPTZ NOT NULL,
               PRIMARY KEY (workspace_id, kpi_id))""",
        "CREATE SEQUENCE series_id_seq START 1",
        """CREATE TABLE series (series_id BIGINT PRIMARY KEY, workspace_id VARCHAR NOT NULL,
               kpi_id VARCHAR NOT NULL, series_key VARCHAR NOT NULL,
               UNIQUE (workspace_id, series_key))""",
        """CREATE TABLE series_dims (series_id BIGINT NOT NULL, dim VARCHAR NOT NULL,
               value VARCHAR NOT NULL, PRIMARY KEY (series_id, dim))""",
        """CREATE TABLE points (series_id BIGINT NOT NULL, ts TIMESTAMPTZ NOT NULL,
               value DOUBLE NOT NULL, raw_value DOUBLE, correction VARCHAR,
               ingested_at TIMESTAMPTZ NOT NULL)""",
    ],
    2: [
        "ALTER TABLE points ADD COLUMN correction_reason VARCHAR",
        # every correction applied or reverted, kept forever: the audit trail
        """CREATE TABLE correction_log (workspace_id VARCHAR NOT NULL, kpi_id VARCHAR NOT NULL,
               series_key VARCHAR NOT NULL, ts TIMESTAMPTZ NOT NULL, raw_value DOUBLE,
               corrected_value DOUBLE, method VARCHAR, reason VARCHAR, action VARCHAR NOT NULL,
               logged_at TIMESTAMPTZ NOT NULL)""",
        "CREATE SEQUENCE annotation_id_seq START 1",
        """CREATE TABLE annotations (id BIGINT PRIMARY KEY, workspace_id VARCHAR NOT NULL,
               kpi_id VARCHAR, start_ts TIMESTAMPTZ NOT NULL, end_ts TIMESTAMPTZ NOT NULL,
               label VARCHAR NOT NULL, kind VARCHAR NOT NULL, created_at TIMESTAMPTZ NOT NULL)""",
        # anomalies of a KPI slice at a grain, stored once when detected
        """CREATE TABLE anomalies (workspace_id VARCHAR NOT NULL, kpi_id VARCHAR NOT NULL,
               slice VARCHAR NOT NULL, grain VARCHAR NOT NULL, ts TIMESTAMPTZ NOT NULL,
               actual DOUBLE, expected DOUBLE, lo DOUBLE, hi DOUBLE, score DOUBLE,
               severity VARCHAR, kind VARCHAR, favourable BOOLEAN,
               detected_at TIMESTAMPTZ NOT NULL,
               PRIMARY KEY (workspace_id, kpi_id, slice, grain, ts))""",
    ],
    3: [
        # spacing statistics per series, kept up to date by write_points: a `last` KPI whose
        # series never have two points closer than a period is aggregated like a sum
        "ALTER TABLE series ADD COLUMN last_ts TIMESTAMPTZ",
        "ALTER TABLE series ADD COLUMN min_gap_us BIGINT",
        """UPDATE series SET last_ts = g.last_ts, min_gap_us = g.gap FROM (
               SELECT series_id, max(ts) AS last_ts, min(d) AS gap FROM (
                   SELECT series_id, ts, epoch_us(ts) - lag(epoch_us(ts)) OVER (
                       PARTITION BY series_id ORDER BY ts) AS d FROM points)
               GROUP BY series_id) g WHERE series.series_id = g.series_id""",
    ],
    4: [
        # durable delivery: one row per (notification, channel), kept after delivery so a
        # notification is never sent twice
        """CREATE TABLE outbox (workspace_id VARCHAR NOT NULL, notification_id VARCHAR NOT NULL,
               channel VARCHAR NOT NULL, payload JSON NOT NULL, status VARCHAR NOT NULL,
               attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at TIMESTAMPTZ NOT NULL,
               last_error VARCHAR, created_at TIMESTAMPTZ NOT NULL, delivered_at TIMESTAMPTZ,
               PRIMARY KEY (workspace_id, notification_id, channel))""",
    ],
    5: [
        # alerting state, kept as JSON documents with a few key columns (the store does not
        # know the alert model): rules, one alert per fingerprint, the append-only history of
        # its transitions and acknowledgements, silences and notification group states
        """CREATE TABLE alert_rules (workspace_id VARCHAR NOT NULL, rule_id VARCHAR NOT NULL,
               definition JSON NOT NULL, updated_at TIMESTAMPTZ NOT NULL,
               PRIMARY KEY (workspace_id, rule_id))""",
        """CREATE TABLE alert_instances (workspace_id VARCHAR NOT NULL,
               fingerprint VARCHAR NOT NULL, rule_id VARCHAR NOT NULL, kpi_id VARCHAR,
               state VARCHAR NOT NULL, severity VARCHAR, doc JSON NOT NULL,
               updated_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (workspace_id, fingerprint))""",
        "CREATE SEQUENCE alert_history_seq START 1",
        """CREATE TABLE alert_history (seq BIGINT NOT NULL, workspace_id VARCHAR NOT NULL,
               fingerprint VARCHAR NOT NULL, from_state VARCHAR, to_state VARCHAR NOT NULL,
               at_ts TIMESTAMPTZ NOT NULL, severity VARCHAR, value DOUBLE, detail VARCHAR)""",
        "CREATE SEQUENCE alert_ack_seq START 1",
        """CREATE TABLE alert_acks (seq BIGINT NOT NULL, workspace_id VARCHAR NOT NULL,
               fingerprint VARCHAR NOT NULL, ack_by VARCHAR NOT NULL,
               at_ts TIMESTAMPTZ NOT NULL, comment VARCHAR)""",
        """CREATE TABLE silences (workspace_id VARCHAR NOT NULL, silence_id VARCHAR NOT NULL,
               start_ts TIMESTAMPTZ NOT NULL, end_ts TIMESTAMPTZ NOT NULL, doc JSON NOT NULL,
               created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL,
               PRIMARY KEY (workspace_id, silence_id))""",
        """CREATE TABLE alert_groups (workspace_id VARCHAR NOT NULL, group_key VARCHAR NOT NULL,
               doc JSON NOT NULL, updated_at TIMESTAMPTZ NOT NULL,
               PRIMARY KEY (workspace_id, group_key))""",
    ],
    6: [
        # usage: what users did (append only, a sequence keeps insertion order; filters as
        # canonical JSON) and which insights each user was shown, for novelty and affinity
        "CREATE SEQUENCE interaction_seq START 1",
        """CREATE TABLE interactions (seq BIGINT NOT NULL, workspace_id VARCHAR NOT NULL,
               user_id VARCHAR NOT NULL, role VARCHAR, kind VARCHAR NOT NULL, kpi_id VARCHAR,
               filters JSON NOT NULL, at_ts TIMESTAMPTZ NOT NULL)""",
        """CREATE TABLE insight_views (workspace_id VARCHAR NOT NULL, user_id VARCHAR NOT NULL,
               insight_key VARCHAR NOT NULL, first_shown TIMESTAMPTZ NOT NULL,
               last_shown TIMESTAMPTZ NOT NULL, times INTEGER NOT NULL,
               PRIMARY KEY (workspace_id, user_id, insight_key))""",
    ],
    7: [
        # accounts: users are global (workspace membership comes later), profile fields in a
        # JSON doc; one sessions row per refresh token issued, its hash only, chained by
        # rotated_from within a family (the login session) so a rotated-out token is
        # recognised when it comes back; failed logins by key (user or address) for rate
        # limiting; dashboards belong to a workspace like everything else
        """CREATE TABLE users (id VARCHAR PRIMARY KEY, username VARCHAR NOT NULL UNIQUE,
               password_hash VARCHAR NOT NULL, role VARCHAR NOT NULL, doc JSON NOT NULL,
               created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL,
               disabled BOOLEAN NOT NULL DEFAULT false)""",
        """CREATE TABLE sessions (id VARCHAR PRIMARY KEY, user_id VARCHAR NOT NULL,
               family_id VARCHAR NOT NULL, refresh_hash VARCHAR NOT NULL UNIQUE,
               created_at TIMESTAMPTZ NOT NULL, last_seen TIMESTAMPTZ NOT NULL,
               expires_at TIMESTAMPTZ NOT NULL, revoked_at TIMESTAMPTZ,
               user_agent VARCHAR NOT NULL DEFAULT '', address VARCHAR NOT NULL DEFAULT '',
               rotated_from VARCHAR)""",
        "CREATE TABLE login_failures (key VARCHAR NOT NULL, at_ts TIMESTAMPTZ NOT NULL)",
        """CREATE TABLE dashboards (workspace_id VARCHAR NOT NULL, id VARCHAR NOT NULL,
               owner_id VARCHAR NOT NULL, name VARCHAR NOT NULL, spec JSON NOT NULL,
               shared_with JSON NOT NULL, created_at TIMESTAMPTZ NOT NULL,
               updated_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (workspace_id, id))""",
    ],
    8: [
        # memberships: a user's role in a workspace (the global role admin means server
        # administrator); every existing user joins 'default' with their current role, so a
        # single-business install keeps working unchanged. Workspace records keep a change time
        """CREATE TABLE memberships (workspace_id VARCHAR NOT NULL, user_id VARCHAR NOT NULL,
               role VARCHAR NOT NULL, created_at TIMESTAMPTZ NOT NULL,
               PRIMARY KEY (workspace_id, user_id))""",
        "ALTER TABLE workspaces ADD COLUMN updated_at TIMESTAMPTZ",
        "UPDATE workspaces SET updated_at = created_at",
        """INSERT INTO memberships (workspace_id, user_id, role, created_at)
               SELECT 'default', id, role, created_at FROM users""",
    ],
    9: [
        # ingest tokens: long-lived credentials that only write points into one workspace
        # (Telegraf, batch jobs); the secret's SHA-256 only, kept after revocation for the
        # record; deleted with their workspace, never exported
        """CREATE TABLE ingest_tokens (workspace_id VARCHAR NOT NULL, id VARCHAR NOT NULL,
               name VARCHAR NOT NULL, token_hash VARCHAR NOT NULL UNIQUE,
               created_by VARCHAR NOT NULL, created_at TIMESTAMPTZ NOT NULL,
               last_used_at TIMESTAMPTZ, revoked_at TIMESTAMPTZ, expires_at TIMESTAMPTZ,
               PRIMARY KEY (workspace_id, id))""",
    ],
    10: [
        # quota state: what the servers sharing a store remember of a workspace's quotas
        # between requests (its ingest token bucket as an exact fraction, an upper bound of
        # its stored points); a running server's state: deleted with the workspace, never
        # exported or migrated (see STATE_TABLES)
        """CREATE TABLE quota_state (workspace_id VARCHAR PRIMARY KEY, bucket_level VARCHAR,
               bucket_at TIMESTAMPTZ, stored BIGINT)""",
    ],
}
