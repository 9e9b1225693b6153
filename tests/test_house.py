"""The house's rules, read from the source: imports follow the flow of data, no module circles, a torch-free ground
floor, and one place that makes connections.

The flow: common (the ground floor) -> training -> export -> model_repository -> serving -> clients -> deploy ->
evaluation. A module may import its own floor or one below it. Every import counts, at the top of a file or inside
a function, since a lazy import still ties the two floors together.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLOORS = ("common", "training", "export", "model_repository", "serving", "clients", "deploy", "evaluation")
GENERATED = ("_pb2.py", "_pb2_grpc.py")

# Imports against the flow that are there on purpose: (importer, imported) -> why. At most three.
DELIBERATE: dict[tuple[str, str], str] = {}

# Calls that open a connection to a backend, and the one module allowed to make them.
CONNECTIONS = {"InferenceServerClient": "a Triton client", "MilvusClient": "a Milvus client",
               "insecure_channel": "a gRPC channel", "secure_channel": "a gRPC channel"}
FACTORY = "common.connect"


def modules(root: Path, floors: Iterable[str] = FLOORS) -> dict[str, Path]:
    """Dotted module name -> file, for every Python file of the floors (generated protobuf stubs left out)."""
    found = {}
    for floor in floors:
        for path in sorted((root / floor).rglob("*.py")):
            if path.name.endswith(GENERATED):
                continue
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    package = module if is_package else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph(root: Path, floors: Iterable[str] = FLOORS) -> dict[str, set[str]]:
    """Module -> the modules of the floors it imports (each import resolved to the longest module it names)."""
    found = modules(root, floors)
    graph = {}
    for module, path in found.items():
        targets = set()
        for name in _imported_names(ast.parse(path.read_text()), module, path.name == "__init__.py"):
            while name and name not in found:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        # ``from a.b import c`` names both a.b and a.b.c: keep the most specific of a chain
        graph[module] = {t for t in targets if not any(o.startswith(t + ".") for o in targets)}
    return graph


def against_the_flow(graph: dict[str, set[str]], floors: tuple[str, ...] = FLOORS) -> list[tuple[str, str]]:
    floor = {name: rank for rank, name in enumerate(floors)}
    return sorted((m, t) for m, targets in graph.items() for t in targets
                  if floor[t.split(".")[0]] > floor[m.split(".")[0]])


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def connection_sites(root: Path) -> list[tuple[str, int, str]]:
    """(module, line, what) of every call that opens a backend connection, outside the factory."""
    sites = []
    for module, path in modules(root).items():
        if module == FACTORY:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in CONNECTIONS:
                    sites.append((module, node.lineno, CONNECTIONS[name]))
    return sites


# -- the rules, on this tree ---------------------------------------------------------------------------------------
def test_every_import_follows_the_flow_except_the_named_ones():
    assert len(DELIBERATE) <= 3
    upward = against_the_flow(import_graph(ROOT))
    assert [pair for pair in upward if pair not in DELIBERATE] == []
    assert set(DELIBERATE) <= set(upward), "an exception that no longer happens should be removed"


def test_no_module_circles():
    assert circles(import_graph(ROOT)) == []


def test_only_the_factory_opens_connections():
    assert connection_sites(ROOT) == []


def test_the_ground_floor_loads_without_torch_or_any_floor_above():
    names = sorted(m for m in modules(ROOT, ("common",)))
    code = ("import sys; " + "; ".join(f"import {m}" for m in names) +
            "; above = sorted({n.split('.')[0] for n in sys.modules} & set(" + repr(FLOORS[1:]) + "))"
            "; print('torch' in sys.modules, above)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "[]"]


# -- the checks would catch a breach ----------------------------------------------------------------------------
def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.mark.parametrize("line", ["from serving.index import search", "import serving.index",
                                  "def later():\n    from serving import index"])
def test_an_upward_import_is_caught_wherever_it_is_written(tmp_path, line):
    root = _tree(tmp_path, {"common/__init__.py": "", "common/home.py": line + "\n",
                            "serving/__init__.py": "", "serving/index.py": "search = 1\n"})
    assert against_the_flow(import_graph(root)) == [("common.home", "serving.index")]


def test_a_relative_import_resolves_and_a_circle_is_caught(tmp_path):
    root = _tree(tmp_path, {"training/__init__.py": "", "training/a.py": "from . import b\n",
                            "training/b.py": "from training.a import x\n"})
    assert against_the_flow(import_graph(root)) == []
    assert circles(import_graph(root)) == [["training.a", "training.b"]]


def test_a_client_made_outside_the_factory_is_caught(tmp_path):
    root = _tree(tmp_path, {"serving/__init__.py": "",
                            "serving/x.py": "import grpc\nchannel = grpc.insecure_channel('h:1')\n",
                            "common/__init__.py": "",
                            "common/connect.py": "from pymilvus import MilvusClient\nc = MilvusClient(uri='u')\n"})
    assert connection_sites(root) == [("serving.x", 2, "a gRPC channel")]
