"""kpidash — a KPI intelligence engine.

Public entry points: :class:`kpidash.engine.Engine` (ingest, query, render),
:func:`kpidash.core.registry.load_registry` (KPI definitions) and the ``kpidash`` CLI.
"""

__version__ = "0.1.0"
