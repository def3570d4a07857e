"""How the integration suite's tests go to its pytest-xdist workers: one test at a time to whichever
worker is free, the longest first by what the last run measured, so that no worker is left with a
long test while the others idle at the end. The tests that make an ITS of type host go to one worker
together, one after another: the hosting cluster is one hub, which serves one ITS at a time. With them
goes the Argo CD module, whose tests share a module fixture that must exist once in the sandbox (its
Argo CD) and whose Application has a host ITS.

Without a record (a fresh clone) the order is the collection's. The record (ini option
`test_durations`, by default `.cache/test-durations.json`) is rewritten after each run with the
durations it measured (setup, call and teardown), so it follows the suite as tests are added or change.

A pytest plugin: `python -m pytest -p tests.scheduling -n N` (tests/run.py).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadScopeScheduling
from xdist.workermanage import WorkerController

from tests.sandbox.servers import REPO

DURATIONS = REPO / ".cache" / "test-durations.json"
# Test node ids (a module, a test, or one case of a parametrized test) that use the hosting cluster's hub.
# The host_hub fixture (conftest.py) refuses a test that is not listed here.
HOST_HUB = (
    "tests/test_argocd.py",
    "tests/test_lifecycle.py::test_three_types_then_helm_test_then_uninstall_leaves_only_the_kept_spaces",
    "tests/test_lifecycle.py::test_every_command_notes_prints_runs_as_printed",
    "tests/test_ocm.py::test_a_wec_joins_each_type_of_its_and_carries_work_both_ways[host]",
    "tests/test_reliability.py::test_a_hub_serves_one_its_and_refuses_a_second_naming_the_first",
    "tests/test_sandbox.py::test_controlplane_of_each_type_becomes_ready_with_working_credentials[host]",
    # Also: another release's binding of KubeFlex to cluster-admin would hide the refusal it shows.
    "tests/test_kubeflex.py::test_a_host_its_needs_kubeflex_to_hold_cluster_admin_and_the_hook_says_so",
)
HOST_HUB_SCOPE = "host-hub"


def uses_host_hub(nodeid: str) -> bool:
    return any(nodeid == listed or nodeid.startswith((f"{listed}::", f"{listed}[")) for listed in HOST_HUB)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "test_durations", "the record of test durations the scheduler reads and each run rewrites", default=str(DURATIONS)
    )


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the controller, which sees every worker's reports
        config.pluginmanager.register(DurationRecorder(record(config)), "duration-recorder")


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> LongestFirst:
    return LongestFirst(config, log)


def record(config: pytest.Config) -> Path:
    return Path(str(config.getini("test_durations")))


def read_durations(path: Path) -> dict[str, float]:
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(nodeid): float(seconds) for nodeid, seconds in recorded.items()} if isinstance(recorded, dict) else {}


class LongestFirst(LoadScopeScheduling):  # type: ignore[misc]  # xdist has no type annotations
    """xdist's scope scheduling with a scope per test (one for all of HOST_HUB), and the longest
    pending scope sent first. A test never measured counts as the longest: new tests show their
    duration early, and with no record at all the collection's order stays."""

    def __init__(self, config: pytest.Config, log: Producer | None = None) -> None:
        super().__init__(config, log)
        self.durations = read_durations(record(config))

    def _split_scope(self, nodeid: str) -> str:
        return HOST_HUB_SCOPE if uses_host_hub(nodeid) else nodeid

    def _expected(self, scope: str) -> float:
        return sum(self.durations.get(nodeid, float("inf")) for nodeid in self.workqueue[scope])

    def _assign_work_unit(self, node: WorkerController) -> None:
        longest = max(self.workqueue, key=self._expected)  # the first of equals: the collection's order
        self.workqueue.move_to_end(longest, last=False)
        super()._assign_work_unit(node)


class DurationRecorder:
    """Sums each test's setup, call and teardown durations in the controller, as its workers report
    them, and merges them into the record at the end of the session."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.measured: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.measured[report.nodeid] += report.duration

    def pytest_sessionfinish(self) -> None:
        if self.measured:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            merged = {**read_durations(self.path), **{k: round(v, 1) for k, v in self.measured.items()}}
            self.path.write_text(json.dumps(dict(sorted(merged.items())), indent=1) + "\n")
