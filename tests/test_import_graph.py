"""The import rules of the README's layout, read from the source with ``ast``: no cycle, no
library module of ``pauc_ray`` importing the trainer or the experiments, ``service`` reaching
k-means only through ``pauc_ray``, and the losses free of Ray, faiss and I/O libraries."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pauc_ray", "cluster", "service", "tuning")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (anywhere in the file, lazily or not)."""
    files = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    return {
        module: {m for m in map(resolve, _imports(path)) if m and m != module}
        for module, path in files.items()
    }


def test_no_import_cycles(graph):
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(graph.get(module, ())):
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep) :], dep] if dep in path else [module, dep]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if dep not in state:
                visit(dep, [*path, dep])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_library_modules_import_neither_the_trainer_nor_the_experiments(graph):
    upper = ("pauc_ray.train", "pauc_ray.experiments")
    bad = [
        f"{module} -> {dep}"
        for module, deps in graph.items()
        if module.startswith("pauc_ray") and not module.startswith(upper)
        for dep in deps
        if dep.startswith(upper)
    ]
    assert bad == []


def test_service_reaches_clustering_only_through_pauc_ray(graph):
    bad = [f"{m} -> {d}" for m, deps in graph.items() if m.startswith("service") for d in deps]
    assert [edge for edge in bad if edge.split(" -> ")[1].startswith("cluster")] == []


def test_cluster_knows_nothing_of_models_or_training(graph):
    """Besides itself, ``cluster`` reaches only the storage layer (for its per-epoch cache)."""
    bad = [
        f"{m} -> {d}"
        for m, deps in graph.items()
        if m.startswith("cluster")
        for d in deps
        if not d.startswith("cluster") and d != "pauc_ray.storage"
    ]
    assert bad == []


def test_storage_is_a_leaf(graph):
    """``pauc_ray.storage`` (paths and object stores) imports no project module."""
    assert graph["pauc_ray.storage"] == set()


def test_losses_import_no_ray_faiss_or_io():
    banned = ("ray", "faiss", "pyarrow", "fsspec", "pandas")
    for path in (ROOT / "pauc_ray" / "losses").rglob("*.py"):
        roots = {name.split(".")[0] for name in _imports(path)}
        assert not roots & set(banned), f"{path.name} imports {sorted(roots & set(banned))}"
