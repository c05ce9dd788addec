"""Insights: ranked, explained findings in plain language — every one computed, none random.

Modules: :mod:`~.model` (Insight, factors), :mod:`~.wording` (how they read),
:mod:`~.change` (period-over-period change, drivers, concentration), :mod:`~.signals`
(trend, trend change, record, anomaly), :mod:`~.pace` (pace to goal), :mod:`~.notes` (data
quality, correlated KPIs), :mod:`~.rank` (score, order, diversity), :mod:`~.digest`.
Filter-usage insights come from :mod:`kpidash.core.usage`; the numbers behind drivers and
correlations from :mod:`kpidash.core.drivers` and :mod:`kpidash.core.correlate`. Nothing here
reads a clock or a store: the engine (:mod:`kpidash.engine.insights`) gathers the data.
"""

from kpidash.core.insights.digest import Digest, build_digest
from kpidash.core.insights.model import (
    Factors,
    Insight,
    InsightType,
    Ranked,
    magnitude_of,
    significance_of,
)
from kpidash.core.insights.rank import RankOptions, rank

__all__ = ["Digest", "Factors", "Insight", "InsightType", "RankOptions", "Ranked",
           "build_digest", "magnitude_of", "rank", "significance_of"]
