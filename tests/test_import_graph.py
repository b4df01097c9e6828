"""The package import graph (ARCHITECTURE.md): theory <- results <- (verifier, audits, attacks) <- reports <-
regression <- cli, with no cycle between first-level packages and none between modules at import time."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "hybridcert"
LAYER = {"theory": 0, "jsonl": 0, "results": 1, "verifier": 2, "audits": 2, "attacks": 2, "reports": 3,
         "regression": 4, "templates": 4, "cli": 5, "__main__": 6, "__init__": 0}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, top_level_only: bool, modules: set[str]) -> set[str]:
    """hybridcert modules imported by ``path`` (module level only, or everywhere including inside functions).
    ``from pkg import submodule`` counts as an import of the submodule only."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.If) and top_level_only:  # `if TYPE_CHECKING:` imports do not run
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hybridcert"):
            subs = {f"{node.module}.{a.name}" for a in node.names} & modules
            out.update(subs)
            if len(subs) < len(node.names):
                out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("hybridcert"))
    return out


@functools.cache
def _graph(top_level_only: bool) -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = {m for m in _imports(path, top_level_only, set(modules)) if m in modules and m != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle_between_modules() -> None:
    assert _cycle(_graph(top_level_only=True)) is None


def test_no_cycle_between_first_level_packages() -> None:
    """Including imports inside functions: a lazy import may defer cost, never reverse the layering."""
    packages: dict[str, set[str]] = {}
    for name, deps in _graph(top_level_only=False).items():
        src = name.split(".")[1] if "." in name else "__init__"
        packages.setdefault(src, set()).update(d.split(".")[1] for d in deps if "." in d)
    for src in packages:
        packages[src].discard(src)
    assert _cycle(packages) is None, packages


def test_results_sits_on_theory_only() -> None:
    for name, deps in _graph(top_level_only=False).items():
        if name.startswith("hybridcert.results") or name.startswith("hybridcert.theory"):
            bad = {d for d in deps if LAYER.get(d.split(".")[1], 9) > LAYER[name.split(".")[1]]}
            assert not bad, (name, bad)


def test_one_definition_per_results_class() -> None:
    for cls in ("Counts", "FrontierPoint", "ModelInfo", "InputResult", "AuditResults"):
        hits = [p for p in ROOT.rglob("*.py") if f"\nclass {cls}(" in p.read_text(encoding="utf-8")]
        assert [p.relative_to(ROOT).as_posix() for p in hits] == ["results/schema.py"], (cls, hits)
