"""The house's layers (issue 41): every hwprof module has a layer, and no module imports itself back.

`lint-imports` (run by `make test`) checks that no layer imports one above it; these tests keep the
contract complete as modules are added, and forbid import circles anywhere (which a layers contract
does not see inside one layer).
"""

from __future__ import annotations

import tomllib

import grimp

from tests.conftest import REPO

# Package __init__ modules whose children sit in different layers; they import only core modules.
MIXED_PACKAGES = {"hwprof", "hwprof.predictors", "hwprof.executors"}


def _graph():
    return grimp.build_graph("hwprof", "nas", "devices", include_external_packages=False)


def _layers() -> list[set[str]]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    return [{m.strip() for m in layer.replace("\n", " ").split(":") if m.strip()} for layer in contract["layers"]]


def test_every_hwprof_module_is_in_exactly_one_layer():
    layers = _layers()
    listed = [m for layer in layers for m in layer]
    assert len(listed) == len(set(listed)), "a module is listed in two layers"
    hwprof_modules = {m for m in _graph().modules if m.split(".")[0] == "hwprof"} - MIXED_PACKAGES
    missing = sorted(m for m in hwprof_modules if m not in listed)
    assert not missing, f"add these modules to a layer in pyproject.toml [tool.importlinter]: {missing}"
    stale = sorted(m for m in listed if m.startswith("hwprof.") and m not in hwprof_modules)
    assert not stale, f"layers list modules that no longer exist: {stale}"


def test_mixed_package_inits_import_only_core_modules():
    core = _layers()[-1]
    graph = _graph()
    for package in MIXED_PACKAGES:
        imported = {m for m in graph.find_modules_directly_imported_by(package) if m.startswith("hwprof")}
        assert imported <= core, f"{package} imports {sorted(imported - core)}, above the core"


def test_no_import_circles():
    graph = _graph()
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    assert not circles, f"import circles: {circles}"
