"""The Ray tests share one xdist worker (``ray_test_group.py``): run a small suite of fake Ray
and plain tests with ``-n 2 --dist loadgroup`` and read which worker ran what, in which order."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

RAY_TESTS = textwrap.dedent(
    """
    import pytest
    from record import record

    pytestmark = pytest.mark.ray

    @pytest.mark.starts_nodes
    def test_nodes():
        record("nodes")

    @pytest.mark.parametrize("i", range(5))
    def test_marked(i):
        record(f"marked{i}")
    """
)
FIXTURE_TESTS = textwrap.dedent(
    """
    from record import record

    def test_fixture_a(ray_cluster):
        record("fixture_a")

    def test_fixture_b(ray_cluster):
        record("fixture_b")
    """
)
PLAIN_COUNT = 8
PLAIN_TESTS = textwrap.dedent(
    """
    import time
    import pytest
    from record import record

    @pytest.mark.parametrize("i", range({plain_count}))
    def test_plain(i):
        time.sleep(0.1)
        record(f"plain{{i}}")
    """
).format(plain_count=PLAIN_COUNT)
RECORD = textwrap.dedent(
    """
    import os
    from pathlib import Path

    def record(name):
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with open(Path(__file__).parent / f"ran-{worker}.txt", "a") as f:
            f.write(name + "\\n")
    """
)
CONFTEST = textwrap.dedent(
    """
    import pytest
    from ray_test_group import pytest_collection_modifyitems

    @pytest.fixture(scope="session")
    def ray_cluster():
        return None
    """
)
INI = textwrap.dedent(
    """
    [pytest]
    markers =
        ray: uses Ray
        starts_nodes: starts Ray nodes
        xdist_group: xdist's group
    """
)


def _run_fake_suite(tmp_path: Path, *args: str) -> dict[str, list[str]]:
    files = {
        "test_a_plain.py": PLAIN_TESTS,  # first in collection order: the hook must move them
        "test_b_ray.py": RAY_TESTS,
        "test_c_fixture.py": FIXTURE_TESTS,
        "record.py": RECORD,
        "conftest.py": CONFTEST,
        "pytest.ini": INI,
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(tmp_path)])}
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {
        path.stem.removeprefix("ran-"): path.read_text().split()
        for path in sorted(tmp_path.glob("ran-*.txt"))
    }


RAY_NAMES = {"nodes", "fixture_a", "fixture_b"} | {f"marked{i}" for i in range(5)}


@pytest.mark.slow
def test_under_xdist_every_ray_test_runs_in_one_worker_first_and_node_starters_last(tmp_path):
    ran = _run_fake_suite(tmp_path, "-n", "2", "--dist", "loadgroup")
    holders = [worker for worker, names in ran.items() if RAY_NAMES & set(names)]
    assert len(holders) == 1, f"the Ray tests were split between workers: {ran}"
    names = ran[holders[0]]
    ray_run = [name for name in names if name in RAY_NAMES]
    assert set(ray_run) == RAY_NAMES and len(ray_run) == len(RAY_NAMES)
    assert names[: len(RAY_NAMES)] == ray_run, f"a plain test ran before a Ray test: {names}"
    assert ray_run[-1] == "nodes", ray_run
    plain = [name for names in ran.values() for name in names if name.startswith("plain")]
    assert sorted(plain) == sorted(f"plain{i}" for i in range(PLAIN_COUNT))


def test_in_one_process_ray_tests_go_first_and_node_starters_last(tmp_path):
    ran = _run_fake_suite(tmp_path, "-n", "0")
    names = ran["main"]
    assert set(names[: len(RAY_NAMES)]) == RAY_NAMES
    assert names[len(RAY_NAMES) - 1] == "nodes"
    assert len(names) == len(RAY_NAMES) + PLAIN_COUNT
