from __future__ import annotations

import numpy as np
import pytest

from kpidash.core.expression import parse_expression


@pytest.mark.parametrize(("src", "names"), [
    ("12 * mrr", ("mrr",)),
    ("mrr / active_customers", ("mrr", "active_customers")),
    ("-(a - b) / (a + 2.5)", ("a", "b")),
])
def test_allowed(src: str, names: tuple[str, ...]) -> None:
    assert parse_expression(src).names == names


@pytest.mark.parametrize("src", [
    "__import__('os').system('x')", "a ** 2", "a.b", "a[0]", "f(a)", "a if b else c",
    "lambda: 1", "'text'", "a < b", "", "a +", "True + a",
])
def test_rejected(src: str) -> None:
    with pytest.raises(ValueError):
        parse_expression(src)


def test_evaluates_on_arrays_and_division_by_zero_is_missing() -> None:
    e = parse_expression("(a - b) / b * 100")
    out = e.evaluate({"a": np.array([110.0, 5.0, np.nan]), "b": np.array([100.0, 0.0, 1.0])})
    assert out[0] == pytest.approx(10.0)
    assert np.isnan(out[1]) and np.isnan(out[2])
