"""The integration suite's scheduling (tests/scheduling.py), on a suite of its own run by pytest-xdist:
a first run records the durations, the next sends the longest test first and keeps the Argo CD
module on one worker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.sandbox.servers import REPO

TEST = """
import pytest
from pathlib import Path
from tests.scheduling import DurationRecorder, LongestFirst, read_durations

RECORD = Path({record!r})

class Recorded(LongestFirst):
    def __init__(self, config, log=None):
        super().__init__(config, log)
        self.durations = read_durations(RECORD)

def pytest_configure(config):
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(DurationRecorder(RECORD), "duration-recorder")

@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    return Recorded(config, log)
"""
TEST = """
import os, time, pytest

@pytest.mark.parametrize("seconds", {seconds!r})
def test_sleep(seconds):
    with open({started!r}, "a") as started:
        started.write(f"{{os.environ['PYTEST_XDIST_WORKER']}} {{__name__}} {{seconds}}\\n")
    time.sleep(seconds)
"""


def run_suite(root: Path) -> list[tuple[str, str, float]]:
    """Runs the suite on two workers; returns (worker, module, seconds) in the order the tests started."""
    started = root / "started.txt"
    started.unlink(missing_ok=True)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.scheduling",
            "-q",
            "-n",
            "2",
            "--rootdir",
            str(root),
            str(root / "tests"),
        ],
        cwd=root,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return [
        (worker, module, float(seconds))
        for worker, module, seconds in (line.split() for line in started.read_text().splitlines())
    ]


def test_the_longest_test_goes_first_and_the_argocd_module_to_one_worker(tmp_path: Path) -> None:
    tests = tmp_path / "tests"
    tests.mkdir()
    record, started = tmp_path / "durations.json", tmp_path / "started.txt"
    (tmp_path / "pytest.ini").write_text(f"[pytest]\ntest_durations = {record}\n")
    # Collection order: shortest first, so that longest-first can only come from the record.
    (tests / "test_a.py").write_text(TEST.format(seconds=[0.1, 0.4, 0.8, 1.6], started=str(started)))
    (tests / "test_argocd.py").write_text(TEST.format(seconds=[0.1, 0.2], started=str(started)))

    def first_on_its_worker(order: list[tuple[str, str, float]], seconds: float) -> bool:
        [worker] = [w for w, module, s in order if (module, s) == ("test_a", seconds)]
        return next(s for w, module, s in order if w == worker) == seconds

    unrecorded = run_suite(tmp_path)
    assert not first_on_its_worker(unrecorded, 1.6)  # the collection's order
    recorded = json.loads(record.read_text())
    assert recorded["tests/test_a.py::test_sleep[1.6]"] >= 1.6
    assert len(recorded) == 6

    ordered = run_suite(tmp_path)
    assert first_on_its_worker(ordered, 1.6)
    for order in (unrecorded, ordered):
        assert len({worker for worker, module, _ in order if module == "test_argocd"}) == 1


def test_the_tests_that_use_the_host_hub_are_one_scope_and_no_others() -> None:
    from tests.scheduling import HOST_HUB_SCOPE, LongestFirst, uses_host_hub

    scope = LongestFirst._split_scope
    join = "tests/test_ocm.py::test_a_wec_joins_each_type_of_its_and_carries_work_both_ways"
    e2e = "tests/test_lifecycle.py::test_three_types_then_helm_test_then_uninstall_leaves_only_the_kept_spaces"
    for nodeid in ("tests/test_argocd.py::test_x", f"{join}[host]", f"{e2e}[helm3]", f"{e2e}[helm4]"):
        assert uses_host_hub(nodeid) and scope(None, nodeid) == HOST_HUB_SCOPE  # type: ignore[arg-type]
    for nodeid in (f"{join}[vcluster]", "tests/test_argocd_extra.py::test_x", "tests/test_lifecycle.py::test_rollback"):
        assert not uses_host_hub(nodeid) and scope(None, nodeid) == nodeid  # type: ignore[arg-type]
