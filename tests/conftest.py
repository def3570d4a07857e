"""Fixtures of the integration suite: one sandbox per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import REPORTS, Sandbox
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
    up(root)
    try:
        yield Sandbox(root, api_client((root / "kubeconfig").read_text()), tmp_path_factory.mktemp("helm"))
    finally:
        down(root)


@pytest.fixture
def hook_runner(sandbox: Sandbox, tmp_path: Path) -> Path:
    """A kubeconfig of ServiceAccount default/hook-runner (cluster-admin), so the hook's own
    requests can be told apart in the audit log."""
    sandbox.kubectl("create", "serviceaccount", "hook-runner", "-n", "default", check=False)
    sandbox.kubectl("create", "clusterrolebinding", "hook-runner", "--clusterrole=cluster-admin",
                    "--serviceaccount=default:hook-runner", check=False)
    return sandbox.token_kubeconfig(tmp_path / "hook-runner.kubeconfig", "default", "hook-runner")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in REPORTS:
        terminalreporter.write_line(line)
