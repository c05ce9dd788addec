"""Safe arithmetic expressions over KPI ids for derived KPIs — parsed, never ``eval``-ed.

Grammar: numbers, KPI ids, ``+ - * /``, unary minus and parentheses. The expression is
parsed with :mod:`ast` and only the node types above are accepted; evaluation walks the tree
on numpy arrays, so a derived KPI is computed for a whole series at once. Division by zero
gives NaN (a missing value), never an exception or an infinity.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div)
_MAX_LENGTH = 500


@dataclass(frozen=True, slots=True)
class Expression:
    source: str
    tree: ast.expr
    names: tuple[str, ...]

    def evaluate(self, env: Mapping[str, FloatArray]) -> FloatArray:
        """Evaluate on aligned arrays; every name must be in ``env``."""
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.asarray(_eval(self.tree, env), dtype=np.float64)
        out[~np.isfinite(out)] = np.nan
        return out


def parse_expression(source: str) -> Expression:
    """Parse ``source``; raise ValueError naming what is not allowed."""
    if len(source) > _MAX_LENGTH:
        raise ValueError(f"expression is {len(source)} characters; at most {_MAX_LENGTH}")
    try:
        tree = ast.parse(source.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ValueError(f"not a valid arithmetic expression: {exc.msg}") from None
    names: list[str] = []
    _check(tree, names)
    return Expression(source, tree, tuple(dict.fromkeys(names)))


def _check(node: ast.expr, names: list[str]) -> None:
    if isinstance(node, ast.BinOp) and isinstance(node.op, _BINOPS):
        _check(node.left, names)
        _check(node.right, names)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        _check(node.operand, names)
    elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return
    elif isinstance(node, ast.Name):
        names.append(node.id)
    else:
        raise ValueError(
            f"{type(node).__name__} is not allowed; use numbers, KPI ids, + - * / and parentheses"
        )


def _eval(node: ast.expr, env: Mapping[str, FloatArray]) -> FloatArray | float:
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left, env), _eval(node.right, env)
        op = node.op
        if isinstance(op, ast.Add):
            return left + right
        if isinstance(op, ast.Sub):
            return left - right
        if isinstance(op, ast.Mult):
            return left * right
        return np.divide(left, right)
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand, env)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.Constant):
        assert isinstance(node.value, int | float)  # guaranteed by _check
        return float(node.value)
    assert isinstance(node, ast.Name)  # guaranteed by _check
    return env[node.id]
