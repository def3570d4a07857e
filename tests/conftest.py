"""Fixtures of the integration suite: one sandbox per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import HOOK_RUNNER, REPORTS, Sandbox
from tests.sandbox.kube import api_client
from tests.sandbox.servers import REPO
from tests.sandbox.supervisor import down, up


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "reliability: faults, bad input, upgrades and privileges (issue 7)")
    # A deprecated call in the hook package breaks at the next pinned upgrade: fail now instead.
    config.addinivalue_line("filterwarnings", r"error::DeprecationWarning:ks_its_hooks\..*")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The secret scan reads the logs of every hook run of the session, so it runs after all of them."""
    items.sort(key=lambda item: item.module is not None and item.module.__name__ == "tests.test_secret_scan")


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    root = REPO / ".cache" / f"sandbox-test-{os.getpid()}"
    # The sandbox ends when this process does, however it ends (Ctrl-C, SIGKILL, a CI timeout).
    lifeline, keep = os.pipe()
    up(root, lifeline=lifeline)
    os.close(lifeline)
    try:
        yield Sandbox(root, api_client((root / "kubeconfig").read_text()), tmp_path_factory.mktemp("helm"))
    finally:
        down(root)
        os.close(keep)


@pytest.fixture
def hook_runner(sandbox: Sandbox) -> str:
    """ServiceAccount default/hook-runner (cluster-admin), so the hook's own requests can be told
    apart in the audit log."""
    sandbox.kubectl("create", "serviceaccount", HOOK_RUNNER, "-n", "default", check=False)
    sandbox.kubectl("create", "clusterrolebinding", HOOK_RUNNER, "--clusterrole=cluster-admin",
                    f"--serviceaccount=default:{HOOK_RUNNER}", check=False)
    return HOOK_RUNNER


@pytest.fixture(autouse=True)
def delete_its_controlplanes(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test tears down what it started: the ControlPlanes it made (their spaces, each an API
    server, a controller-manager and an OCM hub's pods) are deleted after it."""
    if "sandbox" not in request.fixturenames:
        yield
        return
    sandbox: Sandbox = request.getfixturevalue("sandbox")
    before = set(sandbox.controlplane_names())
    yield
    for name in sorted(set(sandbox.controlplane_names()) - before):
        sandbox.delete_controlplane(name)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in REPORTS:
        terminalreporter.write_line(line)
