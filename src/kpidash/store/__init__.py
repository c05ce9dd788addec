"""Storage behind one :class:`~kpidash.store.base.Store` protocol.

Implementations: :mod:`kpidash.store.duckdb` (embedded, the default). Open one by URL with
:func:`kpidash.store.base.open_store`; callers outside this package never import a concrete
store.
"""

from kpidash.store.base import Store, WriteStats, open_store

__all__ = ["Store", "WriteStats", "open_store"]
