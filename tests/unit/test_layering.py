"""The layout's rules, read from the source: no import cycle, no layer importing one above it, and
no module named after a stdlib one.

Layers, bottom to top: the leaves (config, errors, ids, lru, json_text, anthropic_wire: they import
nothing from taskgate); providers and store; telemetry and replicas (beside the engine, which records
and shares through them); the engine; server (the HTTP machinery); context (what every dialect is
handed); api (the dialects); ui (the web pages, which show what the dialects shape); app (wiring);
commands (the CLI's everyday commands), cli_keys (the keys and projects commands) and processes (the
entry points of the processes `serve --workers` starts); cli. A module may import its own package or
a lower layer. Every import counts, under TYPE_CHECKING or inside a function too: each is a
dependency a reader has to follow.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import taskgate

PACKAGE = Path(taskgate.__file__).parent
RANKS = {
    "taskgate": 0, "config": 0, "errors": 0, "ids": 0, "lru": 0, "json_text": 0, "schema_bounds": 0,
    "anthropic_wire": 0,
    "providers": 1, "store": 1,
    "telemetry": 2, "replicas": 2,
    "engine": 3,
    "server": 4,
    "context": 5,
    "api": 6,
    "ui": 7,
    "app": 8,
    "commands": 9, "cli_keys": 9, "processes": 9,
    "cli": 10,
}
# Breaches that another part of issue 14 removes. Delete a line once its import is gone: the test
# fails while a listed import no longer exists, so none is forgotten.
KNOWN_BREACHES = {
}


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its `__init__`)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(module: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The taskgate modules `module` imports. `from package import name` is the submodule when
    `name` is one, else the package."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import taskgate.x.y` names the module x.y, or its package
                target = target.rpartition(".")[0]
            if target.startswith("taskgate") and target != module:
                yield target


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {module: set(imported(module, path, known)) for module, path in known.items()}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_every_module_has_a_layer() -> None:
    assert {layer(module) for module in modules()} <= set(RANKS)


def test_no_layer_imports_one_above_it() -> None:
    upward = sorted(
        (module, target)
        for module, targets in import_graph().items()
        for target in targets
        if layer(target) != layer(module) and RANKS[layer(target)] >= RANKS[layer(module)]
    )
    assert [edge for edge in upward if edge not in KNOWN_BREACHES] == []


def test_no_import_cycles() -> None:
    graph = import_graph()
    for module, target in KNOWN_BREACHES:
        graph[module].discard(target)
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None


def test_known_breaches_still_exist() -> None:
    """Once another change removes one, its line in KNOWN_BREACHES goes too."""
    graph = import_graph()
    assert [edge for edge in sorted(KNOWN_BREACHES) if edge[1] not in graph[edge[0]]] == []


def test_config_is_a_leaf_the_checks_see() -> None:
    """The checks above are only as good as the graph: it must see the imports that are there."""
    graph = import_graph()
    assert graph["taskgate.config"] == set()
    assert "taskgate.config" in graph["taskgate.providers.registry"]
    assert "taskgate.store.accounts" in graph["taskgate.store.sql"]  # `from taskgate.store import accounts`
    assert "taskgate.providers.local.adapter" in graph["taskgate.providers.registry"]  # inside a function


def test_no_module_is_named_after_a_stdlib_one() -> None:
    shadowing = [module for module in modules() if module.rpartition(".")[2] in sys.stdlib_module_names]
    assert shadowing == []
