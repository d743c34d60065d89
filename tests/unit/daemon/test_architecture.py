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


def test_the_daemon_uses_only_the_client_packages_public_modules() -> None:
    private = []
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                parts = node.module.split(".")
                names = [a.name for a in node.names] if parts == ["modelshelf"] else []
                dunder = [n for n in names if n.startswith("__") and n.endswith("__")]
                inner = parts + [n for n in names if n not in dunder]
                if parts[0] == "modelshelf" and any(p.startswith("_") for p in inner):
                    private.append(f"{path.name}: {node.module} {names}")
    assert private == []
