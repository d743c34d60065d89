"""The daemon's modules import one another without a circle (type-only imports included), and
handlers see the server's state, never the server."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import modelshelfd

ROOT = Path(modelshelfd.__file__).parent


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in ROOT.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                names = [node.module] if node.module else [a.name for a in node.names]
                graph[path.stem].update(n.split(".")[0] for n in names)
    return graph


def test_no_import_circle_among_the_daemons_modules() -> None:
    graph = _graph()

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    circles = sorted(m for m in graph if reaches(m, m, {m}))
    assert circles == [], f"modules in an import circle: {circles}"


def test_handlers_and_http_do_not_import_the_server() -> None:
    graph = _graph()
    assert "server" not in graph["handlers"] and "server" not in graph["http"]
