"""Validation reports: every problem at once, each with level, code, message and location."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import ValidationError


class Level(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Location:
    """Where a problem is: a file, an item (a KPI or rule id, or ``#index``), a data row
    (1-based), a field. ``kind`` names what the item is in messages."""

    source: str | None = None
    item: str | None = None
    row: int | None = None
    field: str | None = None
    kind: str = "kpi"

    def __str__(self) -> str:
        parts = []
        if self.source:
            parts.append(self.source)
        if self.item is not None:
            parts.append(f"{self.kind} {self.item}" if self.item.startswith("#")
                         else f"{self.kind} {self.item!r}")
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.field:
            parts.append(f"field {self.field!r}")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Issue:
    level: Level
    code: str
    message: str
    location: Location = field(default_factory=Location)

    def __str__(self) -> str:
        where = str(self.location)
        return f"{self.level}: {where}: {self.message} [{self.code}]" if where else (
            f"{self.level}: {self.message} [{self.code}]"
        )

    def to_dict(self) -> dict[str, object]:
        loc = {k: v for k, v in {
            "source": self.location.source, "item": self.location.item,
            "row": self.location.row, "field": self.location.field}.items() if v is not None}
        return {"level": str(self.level), "code": self.code, "message": self.message,
                "location": loc}


@dataclass(frozen=True, slots=True)
class Report:
    """An immutable list of issues plus counts of issues not listed individually.

    ``omitted`` counts issues per code that were dropped to keep the report small (a file of
    ten million bad rows must not build ten million objects); they still make the report fail.
    """

    issues: tuple[Issue, ...] = ()
    omitted: tuple[tuple[str, int], ...] = ()

    @property
    def errors(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.level is Level.ERROR)

    @property
    def warnings(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.level is Level.WARNING)

    @property
    def error_count(self) -> int:
        return len(self.errors) + sum(n for _, n in self.omitted)

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def codes(self) -> Counter[str]:
        c = Counter(i.code for i in self.issues)
        for code, n in self.omitted:
            c[code] += n
        return c

    def summary(self, limit: int = 5) -> str:
        errs = self.errors
        if not errs:
            return "no errors"
        shown = "; ".join(str(i) for i in errs[:limit])
        more = self.error_count - min(limit, len(errs))
        return f"{self.error_count} error(s): {shown}" + (f"; and {more} more" if more else "")

    def merged(self, other: Report) -> Report:
        om: Counter[str] = Counter(dict(self.omitted))
        om.update(dict(other.omitted))
        return Report(self.issues + other.issues, tuple(sorted(om.items())))

    def to_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "error_count": self.error_count,
                "issues": [i.to_dict() for i in self.issues],
                "omitted": dict(self.omitted)}


class ReportBuilder:
    """Collects issues; keeps at most ``cap_per_code`` of each code and counts the rest."""

    def __init__(self, cap_per_code: int = 1000, item_kind: str = "kpi") -> None:
        self._issues: list[Issue] = []
        self._per_code: Counter[str] = Counter()
        self._omitted: Counter[str] = Counter()
        self._cap = cap_per_code
        self._kind = item_kind

    def add(self, level: Level, code: str, message: str, **where: object) -> None:
        if self._per_code[code] >= self._cap:
            if level is Level.ERROR:
                self._omitted[code] += 1
            return
        self._per_code[code] += 1
        self._issues.append(Issue(level, code, message,
                                  Location(kind=self._kind, **where)))  # type: ignore[arg-type]

    def error(self, code: str, message: str, **where: object) -> None:
        self.add(Level.ERROR, code, message, **where)

    def warning(self, code: str, message: str, **where: object) -> None:
        self.add(Level.WARNING, code, message, **where)

    def pydantic_errors(self, exc: ValidationError, prefix: str, fmt: str,
                        **where: object) -> None:
        """One issue per pydantic error: ``<prefix>.unknown_field`` or ``<prefix>.field``,
        the field path as location and what came; ``fmt`` names the format to check against."""
        for err in exc.errors():
            fld = ".".join(str(p) for p in err["loc"]) or None
            if err["type"] == "extra_forbidden":
                self.error(f"{prefix}.unknown_field", "unknown field; check the spelling against "
                           f"the {fmt}", field=fld, **where)
            else:
                self.error(f"{prefix}.field", f"{err['msg']} (got {err.get('input')!r})",
                           field=fld, **where)

    def extend(self, report: Report) -> None:
        self._issues.extend(report.issues)
        self._omitted.update(dict(report.omitted))

    def build(self) -> Report:
        return Report(tuple(self._issues), tuple(sorted(self._omitted.items())))
