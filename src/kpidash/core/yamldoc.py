"""YAML documents from users (KPI definitions, alert rules), loaded safely and boundedly.

``yaml.safe_load`` already refuses tags that build Python objects (``!!python/object…``), but
two documents still hurt it or its caller: a "billion laughs" document (a few lines of
anchors and aliases, ``b: [*a, *a, …]`` nine levels deep) loads quickly into shared lists yet
expands to 10**9 items as soon as anything walks it (validation, an error message, JSON), and
a deeply nested one (``[[[[…]]]]``) makes the recursive composer raise RecursionError. Here
the document is composed into nodes first; its size with every alias expanded is counted (in
time linear in the distinct nodes) and refused over :data:`MAX_NODES`, and recursion limits
become a refusal too. Refusals are :class:`yaml.YAMLError`, so callers report them as they
report syntax errors.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_NODES = 100_000  # nodes after expanding aliases; the SaaS pack has ~600


class YamlRefused(yaml.YAMLError):  # type: ignore[misc]  # PyYAML ships no type hints
    """A document refused before it was built; ``problem`` says why (as syntax errors do)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def load(text: str) -> Any:
    """The document in ``text`` (None when empty), built by PyYAML's safe constructor."""
    loader = yaml.SafeLoader(text)
    try:  # composing, counting and building all recurse: too deep is a refusal, not a crash
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded(node, {}) > MAX_NODES:
            raise YamlRefused(f"the document expands to more than {MAX_NODES:,} values through "
                              "its aliases (*name); refused as a possible 'billion laughs' "
                              "document")
        return loader.construct_document(node)
    except RecursionError:
        raise YamlRefused("the document is nested too deeply to read; flatten it") from None
    finally:
        loader.dispose()


def _expanded(node: yaml.Node, seen: dict[int, int]) -> int:
    """Nodes under ``node`` with every alias expanded (an alias is the same node object)."""
    known = seen.get(id(node))
    if known is not None:
        return known
    seen[id(node)] = MAX_NODES + 1  # a node that contains itself expands without end
    total = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            total += _expanded(child, seen)
            if total > MAX_NODES:
                break
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            total += _expanded(key, seen) + _expanded(value, seen)
            if total > MAX_NODES:
                break
    seen[id(node)] = total
    return total


__all__ = ["MAX_NODES", "YamlRefused", "load"]
