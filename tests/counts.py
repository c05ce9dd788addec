"""What the reliability suites tried, printed at the end of the test run.

The suites in ``tests/reliability`` call ``count("requests fuzzed", n)`` and the like; the
root conftest prints the totals in a "reliability counts" section after the test summary, so
a CI log shows how much was tried, not just that it passed.
"""

from __future__ import annotations

from collections import Counter

COUNTS: Counter[str] = Counter()


def count(what: str, n: int = 1) -> None:
    """Add ``n`` to the total of ``what`` ("bad inputs tried", "points checked", …)."""
    COUNTS[what] += n


def summary() -> list[str]:
    """One line per count, in the order first counted: ``requests fuzzed: 1,234``."""
    return [f"{what}: {n:,}" for what, n in COUNTS.items()]
