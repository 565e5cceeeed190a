"""The import directions of docs/architecture.md, checked on the source: a forbidden import fails.

Every ``import`` statement counts, including the lazy ones inside functions: a late import is
still a dependency. Two rules:

- a top-level package imports only the packages its row in ``ALLOWED`` names;
- inside a package, its parts (``cloud.ingest``, ``cloud.alerts``, ...) form no loop.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The project's own packages and, per package, the others it may import. Tests, benchmarks and
# the demo sit above everything and may import anything.
ALLOWED: dict[str, set[str]] = {
    # Geometry is the bottom layer: device formats (OwnTracks) decode straight into its ``Fix``.
    "geofences": set(),
    "contract": {"geofences"},
    "decisions": {"contract", "geofences"},
    "ops": {"contract"},
    "edge": {"contract", "decisions", "geofences", "ops"},
    "cloud": {"contract", "decisions", "geofences", "ops"},
    # The simulators drive the real edge (its LLRP codec, its agent as a process).
    "firmware_sim": {"contract", "decisions", "geofences", "ops", "edge"},
    "training": {"contract", "decisions", "edge", "firmware_sim", "ops"},
}
PROJECT = set(ALLOWED) | {"demo", "benchmarks", "tests"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Fully qualified project modules imported by ``path`` (relative imports resolved)."""
    source = path.read_text(encoding="utf-8")
    return _imports_of(source, _module_name(path), is_package=path.name == "__init__.py")


def _imports_of(source: str, module_name: str, *, is_package: bool) -> set[str]:
    tree = ast.parse(source)
    here = module_name.split(".")
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here if is_package else here[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PROJECT}


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _part(module: str) -> str:
    """The unit a loop is judged at: ``cloud.ingest`` for ``cloud.ingest.store``."""
    return ".".join(module.split(".")[:2])


def test_every_package_imports_only_what_its_layer_allows() -> None:
    wrong = []
    for package, allowed in ALLOWED.items():
        for path in _sources(package):
            for module in _imports(path):
                top = module.split(".")[0]
                if top != package and top not in allowed:
                    wrong.append(f"{path.relative_to(ROOT)} imports {module}")
    listing = "\n".join(sorted(set(wrong)))
    assert not wrong, f"forbidden imports (see docs/architecture.md):\n{listing}"


def _loops(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan, iterative enough)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    loops: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return loops


def test_no_package_has_a_loop_between_its_parts() -> None:
    loops = []
    for package in ALLOWED:
        graph: dict[str, set[str]] = defaultdict(set)
        for path in _sources(package):
            source = _part(_module_name(path))
            for module in _imports(path):
                target = _part(module)
                if module.split(".")[0] == package and target != source and target != package:
                    graph[source].add(target)
        loops.extend(_loops(graph))
    assert not loops, "package loops: " + "; ".join(" <-> ".join(loop) for loop in loops)


def test_the_check_sees_lazy_and_relative_imports_and_loops() -> None:
    # The checker must see what it forbids, or the two tests above prove nothing.
    source = "def late():\n    from edge.agent import Agent\nfrom ..rules import runner\n"
    found = _imports_of(source, "cloud.ingest.store", is_package=False)
    assert {"edge.agent", "cloud.rules.runner"} <= found
    assert _loops({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
