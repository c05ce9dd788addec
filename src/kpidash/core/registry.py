"""The KPI registry: load and validate KPI definitions, reporting every problem at once.

Definitions come from YAML (``kpis:`` list, or a bare list), from Python (dicts or
:class:`~kpidash.model.KPI` objects) and from KPI packs. Validation covers field types and
unknown fields (via pydantic, every error collected), min > max, negative weights, ratio and
derived KPIs that refer to unknown KPIs or to non-simple inputs where a simple one is needed,
cycles among derived KPIs, dimensions, and duplicate ids.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from kpidash.core import yamldoc
from kpidash.core.expression import parse_expression
from kpidash.core.report import Report, ReportBuilder
from kpidash.errors import NotFound, RegistryInvalid
from kpidash.model import DIM_NAME_PATTERN, FORECAST_MODELS, KPI, Aggregation, KpiKind

_DIM_RE = re.compile(DIM_NAME_PATTERN)
_ADDITIVE = {Aggregation.SUM, Aggregation.COUNT, Aggregation.LAST}


@dataclass(frozen=True)
class Registry:
    """A validated, immutable set of KPIs keyed by id (in definition order)."""

    kpis: Mapping[str, KPI]

    def __iter__(self) -> Iterator[KPI]:
        return iter(self.kpis.values())

    def __len__(self) -> int:
        return len(self.kpis)

    def __contains__(self, kpi_id: object) -> bool:
        return kpi_id in self.kpis

    def get(self, kpi_id: str) -> KPI:
        try:
            return self.kpis[kpi_id]
        except KeyError:
            known = ", ".join(sorted(self.kpis)[:20]) or "none registered"
            raise NotFound(f"unknown KPI {kpi_id!r}; known KPIs: {known}") from None

    def simple_inputs(self, kpi_id: str) -> tuple[str, ...]:
        """The simple KPIs a KPI is ultimately computed from, in first-seen order."""
        kpi = self.get(kpi_id)
        if kpi.kind is KpiKind.SIMPLE:
            return (kpi.id,)
        out: dict[str, None] = {}
        for dep in kpi.inputs():
            out.update(dict.fromkeys(self.simple_inputs(dep)))
        return tuple(out)

    def merged(self, other: Registry) -> Registry:
        """A new registry with ``other``'s KPIs added or replacing ours; validated again."""
        combined = {**self.kpis, **other.kpis}
        return build_registry(list(combined.values()), source="merged registry")

    def to_dicts(self) -> list[dict[str, Any]]:
        return [k.model_dump(mode="json", exclude_defaults=True) | {"id": k.id, "name": k.name}
                for k in self]


def parse_yaml(text: str, source: str = "<yaml>") -> list[Any]:
    """YAML text → raw definition list; a YAML syntax error becomes a RegistryInvalid."""
    rb = ReportBuilder()
    try:
        doc = yamldoc.load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        row = mark.line + 1 if mark is not None else None
        rb.error("yaml.syntax", f"not valid YAML: {getattr(exc, 'problem', exc)}",
                 source=source, row=row)
        raise RegistryInvalid(f"cannot read KPI definitions from {source}", rb.build()) from None
    if doc is None:
        return []
    if isinstance(doc, dict) and set(doc) <= {"kpis", "version"}:
        doc = doc.get("kpis") or []
    if not isinstance(doc, list):
        rb.error("registry.shape",
                 f"expected a list of KPIs or a mapping with a 'kpis' list, got {type(doc).__name__}",
                 source=source)
        raise RegistryInvalid(f"cannot read KPI definitions from {source}", rb.build())
    return doc


def validate_definitions(raw: Iterable[Any], source: str | None = None) -> tuple[list[KPI], Report]:
    """Check raw definitions (dicts or KPI objects); return the valid KPIs and a full report."""
    rb = ReportBuilder()
    parsed: list[KPI] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(raw):
        label = f"#{index + 1}"
        if isinstance(item, KPI):
            kpi = item
        elif isinstance(item, Mapping):
            label = str(item.get("id", label))
            try:
                kpi = KPI.model_validate(dict(item))
            except ValidationError as exc:
                rb.pydantic_errors(exc, "kpi", "KPI format in the README", source=source,
                                   item=label)
                if isinstance(item.get("id"), str):  # still catch a later duplicate of it
                    seen.setdefault(item["id"], index)
                continue
        else:
            rb.error("kpi.shape", f"expected a mapping of KPI fields, got {type(item).__name__}",
                     source=source, item=label)
            continue
        if kpi.id in seen:
            rb.error("kpi.duplicate_id",
                     f"id {kpi.id!r} is already used by KPI #{seen[kpi.id] + 1}; ids must be unique",
                     source=source, item=kpi.id, field="id")
            continue
        seen[kpi.id] = index
        _check_fields(kpi, rb, source)
        parsed.append(kpi)
    _check_references(parsed, rb, source)
    return parsed, rb.build()


def build_registry(raw: Iterable[Any], source: str | None = None) -> Registry:
    """Validate and build; raise RegistryInvalid with every problem if anything is wrong."""
    kpis, report = validate_definitions(raw, source)
    if not report.ok:
        raise RegistryInvalid(f"invalid KPI definitions in {source or 'input'}", report)
    return Registry({k.id: k for k in kpis})


def load_registry(text: str, source: str = "<yaml>") -> Registry:
    """YAML text → validated Registry."""
    return build_registry(parse_yaml(text, source), source)


def _check_fields(kpi: KPI, rb: ReportBuilder, source: str | None) -> None:
    where: dict[str, Any] = {"source": source, "item": kpi.id}
    if kpi.min_value is not None and kpi.max_value is not None and kpi.min_value > kpi.max_value:
        rb.error("kpi.bounds", f"min_value {kpi.min_value} is greater than max_value "
                 f"{kpi.max_value}; swap them or drop one", field="min_value", **where)
    if kpi.forecast_model not in FORECAST_MODELS:
        rb.error("kpi.forecast_model", f"unknown forecast_model {kpi.forecast_model!r}; use one "
                 f"of {', '.join(FORECAST_MODELS)}", field="forecast_model", **where)
    if kpi.weight < 0:
        rb.error("kpi.weight", f"weight must be ≥ 0, got {kpi.weight}", field="weight", **where)
    if kpi.target is not None and kpi.min_value is not None and kpi.target < kpi.min_value:
        rb.warning("kpi.target_bounds", f"target {kpi.target} is below min_value {kpi.min_value}",
                   field="target", **where)
    for dim in kpi.dimensions:
        if not _DIM_RE.match(dim):
            rb.error("kpi.dimension", f"dimension name {dim!r} must be lower_snake_case",
                     field="dimensions", **where)
    if len(set(kpi.dimensions)) != len(kpi.dimensions):
        rb.error("kpi.dimension", "dimensions are listed twice", field="dimensions", **where)
    if kpi.kind is KpiKind.RATIO:
        for fld in ("numerator", "denominator"):
            if not getattr(kpi, fld):
                rb.error("kpi.ratio", f"a ratio KPI needs {fld} (a KPI id)", field=fld, **where)
        if kpi.expression:
            rb.error("kpi.kind", "expression is for derived KPIs; a ratio uses numerator and "
                     "denominator", field="expression", **where)
    elif kpi.kind is KpiKind.DERIVED:
        if not kpi.expression:
            rb.error("kpi.derived", "a derived KPI needs an expression over other KPI ids",
                     field="expression", **where)
        else:
            try:
                parse_expression(kpi.expression)
            except ValueError as exc:
                rb.error("kpi.expression", str(exc), field="expression", **where)
    else:
        for fld in ("numerator", "denominator", "expression"):
            if getattr(kpi, fld):
                rb.error("kpi.kind", f"{fld} is only for ratio/derived KPIs; set kind",
                         field=fld, **where)
    if kpi.kind is not KpiKind.SIMPLE and "aggregation" in kpi.model_fields_set:
        rb.warning("kpi.aggregation", f"aggregation is ignored for {kpi.kind} KPIs; they are "
                   "computed from their inputs' aggregates", field="aggregation", **where)


def _check_references(kpis: list[KPI], rb: ReportBuilder, source: str | None) -> None:
    by_id = {k.id: k for k in kpis}
    for kpi in kpis:
        where: dict[str, Any] = {"source": source, "item": kpi.id}
        if kpi.kind is KpiKind.RATIO:
            for fld in ("numerator", "denominator"):
                ref = getattr(kpi, fld)
                if not ref:
                    continue
                target = by_id.get(ref)
                if target is None:
                    rb.error("kpi.unknown_reference", f"{fld} refers to unknown KPI {ref!r}",
                             field=fld, **where)
                elif target.kind is KpiKind.SIMPLE and target.aggregation not in _ADDITIVE:
                    rb.error("kpi.ratio_input", f"{fld} {ref!r} aggregates by "
                             f"{target.aggregation}; ratio inputs must be additive "
                             "(sum, count or last) so the ratio is a ratio of sums",
                             field=fld, **where)
                elif target.kind is not KpiKind.SIMPLE:
                    rb.error("kpi.ratio_input", f"{fld} {ref!r} is a {target.kind} KPI; ratio "
                             "inputs must be simple KPIs", field=fld, **where)
        elif kpi.kind is KpiKind.DERIVED and kpi.expression:
            for ref in kpi.inputs():
                if ref not in by_id:
                    rb.error("kpi.unknown_reference", f"expression refers to unknown KPI {ref!r}",
                             field="expression", **where)
    for cycle in _find_cycles(by_id):
        rb.error("kpi.cycle", "KPIs depend on each other in a cycle: " + " → ".join(cycle),
                 source=source, item=cycle[0], field="expression")


def _find_cycles(by_id: Mapping[str, KPI]) -> list[list[str]]:
    """Each dependency cycle once, as a path that starts and ends at its smallest id."""
    cycles: list[list[str]] = []
    seen_sets: set[frozenset[str]] = set()
    state: dict[str, int] = {}  # 1 = on stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in by_id[node].inputs():
            if dep not in by_id:
                continue
            if state.get(dep) == 1:
                cyc = stack[stack.index(dep):]
                key = frozenset(cyc)
                if key not in seen_sets:
                    seen_sets.add(key)
                    start = cyc.index(min(cyc))
                    rot = cyc[start:] + cyc[:start]
                    cycles.append([*rot, rot[0]])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for kpi_id in by_id:
        if kpi_id not in state:
            visit(kpi_id)
    return cycles
