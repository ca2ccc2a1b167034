"""The package's layers: every import of a geoseg module points down this list, and none forms a cycle.

Function-level imports count too (they are how a cycle is usually hidden). A module may import modules of
its own layer or of any layer below it; the import graph of all modules, function-level imports included,
must be acyclic, so no import inside a function can be dodging a cycle. Lazy imports are still allowed
where they keep heavy dependencies (torch, matplotlib, geopandas) off light paths, as long as they point
down. See docs/ARCHITECTURE.md.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "geoseg"

#: Lowest first. A module belongs to the first entry that its dotted name starts with.
LAYERS: list[tuple[str, ...]] = [
    ("geoseg", "geoseg.errors", "geoseg.interrupts", "geoseg.versioning", "geoseg.progress", "geoseg.summaries",
     "geoseg.events"),
    ("geoseg.io",),
    ("geoseg.model",),
    ("geoseg.inference",),
    ("geoseg.vector",),
    ("geoseg.classic",),
    ("geoseg.evaluation",),
    ("geoseg.training",),
    ("geoseg.compress",),
    ("geoseg.cli", "geoseg.xarray", "geoseg.info", "geoseg.distributed", "geoseg.__main__"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    best, best_len = None, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or (prefix != "geoseg" and module.startswith(prefix + "."))
            if matches and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    if best is None and module == "geoseg":
        return 0
    assert best is not None, f"{module} is in no layer; add it to LAYERS in {__file__}"
    return best


def geoseg_imports(path: Path) -> set[str]:
    """Every geoseg module that ``path`` imports, at any depth (``from geoseg import x`` counts x)."""
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "geoseg"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "geoseg" \
                and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules}
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): geoseg_imports(p) for p in PACKAGE.rglob("*.py")}


def test_every_import_points_down() -> None:
    upward = [f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
              for module, targets in graph().items() for target in targets
              if target != "geoseg" and layer_of(target) > layer_of(module)]
    assert not upward, "\n".join(upward)


def test_no_import_cycles() -> None:
    edges = {m: {t for t in ts if t != "geoseg" and t != m} for m, ts in graph().items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(edges.get(module, ())):
            if state.get(target) == 1:
                cycle = stack[stack.index(target):] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if state.get(target) is None:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)


def test_layers_cover_every_module() -> None:
    for module in graph():
        layer_of(module)
