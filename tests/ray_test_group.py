"""Every test that uses Ray in one pytest-xdist group, first (imported by ``conftest.py``).

``pytest -n 2 --dist loadgroup`` (the default, ``pyproject.toml``) then runs them one after
another in one worker, on the one shared local cluster, from the start, while the other worker
takes the tests without Ray; in one process (``-n 0``) the order is all the grouping does.
``tests/test_ray_test_group.py`` runs it under xdist and checks that the group holds: with
pytest 9.2 and pytest-xdist 3.8 it silently did not (pytest-xdist#1386: xdist marks a group by
rewriting ``item._nodeid``, which pytest 9.2 no longer reads), every Ray test ran in both
processes, each on a 4-CPU cluster of its own on 2 cores, and the suite took 1,459 s instead of
1,300 s (hence ``pytest<9.2`` in the ``dev`` extra; benchmarks/RESULTS.md).
"""

from __future__ import annotations

import pytest

GROUP = "ray"


def uses_ray(item: pytest.Item) -> bool:
    return item.get_closest_marker("ray") is not None or "ray_cluster" in item.fixturenames


# tryfirst: xdist's worker reads the xdist_group marks in its own hook of this name; marks
# added after it group nothing, so this one must run before it, whatever the plugin order
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ray_items = [item for item in items if uses_ray(item)]
    # Tests that start Ray nodes of their own go last in the group, when the other worker is
    # done: a raylet that starts under load can give up on its dashboard agent (Ray waits 15 s
    # for the agent's port file, then aborts), and a node that never joins fails the test.
    ray_items.sort(key=lambda item: item.get_closest_marker("starts_nodes") is not None)
    for item in ray_items:
        item.add_marker(pytest.mark.xdist_group(GROUP))
    chosen = set(ray_items)
    items[:] = ray_items + [item for item in items if item not in chosen]
