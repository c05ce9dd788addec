"""DuckDB-only behaviour of the store (the shared contract is in test_contract.py).

Found by benchmarks/soak.py: with DuckDB's default checkpoint threshold (16 MB of WAL) a
server rewriting a bounded key space kept every row version since the last checkpoint in
memory for minutes; the store now checkpoints at :data:`CHECKPOINT_THRESHOLD`.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from kpidash.clock import FixedClock
from kpidash.engine import Engine
from kpidash.packs import load_pack
from kpidash.store import open_store
from kpidash.store.duckdb import CHECKPOINT_THRESHOLD, DuckDBStore

NOW = datetime(2024, 7, 1, 6, tzinfo=UTC)
REGIONS, PLANS = ["NA", "EU", "APAC", "LATAM"], ["free", "pro", "enterprise"]
CHANNELS = ["organic", "paid", "referral", "partner"]
PASSES = 12  # rewrites of the same 8,064 series-hours (~97k points, > 4 MB of WAL)


def _pass(p: int) -> pa.Table:
    """The soak's bounded key space (7 days × 48 series, hourly) with new values."""
    end = NOW.replace(minute=0) - timedelta(hours=1)
    keys = [(end - timedelta(hours=h), s) for h in range(7 * 24)
            for s in itertools.product(REGIONS, PLANS, CHANNELS)]
    return pa.table({
        "timestamp": pa.array([ts for ts, _ in keys], pa.timestamp("us", tz="UTC")),
        "kpi": ["signups"] * len(keys),
        "value": [float((i * 7919 + p * 31) % 997 + 3) for i in range(len(keys))],
        "region": [s[0] for _, s in keys], "plan": [s[1] for _, s in keys],
        "channel": [s[2] for _, s in keys]})


def test_the_checkpoint_threshold_is_set_and_can_be_changed() -> None:
    store = DuckDBStore()
    other = DuckDBStore(checkpoint_threshold="1MB")
    try:
        def setting(s: DuckDBStore) -> str:
            return str(s._run("SELECT current_setting('checkpoint_threshold')")[0][0])

        assert CHECKPOINT_THRESHOLD == "4MB"
        assert setting(store).endswith("MiB") and setting(store).startswith("3.8")
        assert setting(other) != setting(store)
    finally:
        store.close()
        other.close()


def test_rewriting_a_bounded_key_space_checkpoints_and_keeps_the_wal_small(
        tmp_path: Path) -> None:
    path = tmp_path / "soak.duckdb"
    wal = Path(f"{path}.wal")
    engine = Engine(open_store(str(path)), FixedClock(NOW))
    try:
        engine.register(load_pack("saas"))
        sizes: list[int] = []
        for p in range(PASSES):
            engine.ingest_table(_pass(p), source="api")
            sizes.append(wal.stat().st_size if wal.exists() else 0)
        assert engine.store.point_count(engine.workspace, "signups") == 7 * 24 * 48
        # the WAL was checkpointed (it shrank) and never grew far past the threshold
        assert any(b < a for a, b in itertools.pairwise(sizes)), sizes
        assert max(sizes) < 6 * 2**20, sizes
        assert path.stat().st_size > 0  # the data went to the file, not only to memory
    finally:
        engine.close()
