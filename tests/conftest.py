"""Fixtures of the integration suite: one sandbox per run (tests/run.py), or per session."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import HOOK_RUNNER, REPORTS, SANDBOX_ENV, Sandbox, hold_host_hub, made_here, release, unique, wait_until
from tests.sandbox.argocd import ARGOCD_NAME, ARGOCD_NAMESPACE, RESOURCE_TREE_KEY
from tests.sandbox.kube import api_client, manifest
from tests.sandbox.servers import REPO
from tests.sandbox.supervisor import down, up
from tests.scheduling import uses_host_hub


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "reliability: faults, bad input, upgrades and privileges (issue 7)")
    config.addinivalue_line("markers", "argocd: the chart synced by a real Argo CD (issue 17)")
    # A deprecated call in the hook package breaks at the next pinned upgrade: fail now instead.
    config.addinivalue_line("filterwarnings", r"error::DeprecationWarning:ks_its_hooks\..*")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The secret scan reads the logs of every hook run of the session, so it runs after all of them."""
    items.sort(key=lambda item: item.nodeid.startswith("tests/test_secret_scan.py"))


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """The run's sandbox (tests/run.py started it), or one of this session's own."""
    shared = os.environ.get(SANDBOX_ENV)
    if shared:
        root = Path(shared)
        yield Sandbox(root, api_client((root / "kubeconfig").read_text()), tmp_path_factory.mktemp("helm"))
        return
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


@pytest.fixture(scope="module")
def argocd(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Argo CD in the sandbox (tests/sandbox/argocd.py) with the chart released (`make release`) to the
    sandbox's registry, its Helm OCI repository. `tree(app)` reads an Application's resource tree
    from the controller's cache, what Argo CD's UI shows. Per module: Argo CD's controller watches the
    cluster only while the Argo CD tests run."""
    sandbox.core.create_namespaced_config_map(ARGOCD_NAMESPACE, manifest({"metadata": {"name": ARGOCD_NAME}}))
    state_file = sandbox.root / "argocd.json"
    log = sandbox.root / "logs" / "supervisor.log"
    wait_until(
        "Argo CD to start",
        state_file.exists,
        timeout=300,
        shown=lambda: [line for line in log.read_text().splitlines() if "argocd" in line][-3:],
    )
    state: dict[str, Any] = json.loads(state_file.read_text())
    released = release(sandbox, tmp_path_factory.mktemp("argocd-release"))
    assert released.returncode == 0, released.stdout + released.stderr
    host, port = state["redis"].rsplit(":", 1)

    def tree(app: str) -> dict[str, Any]:
        raw = subprocess.run(
            ["redis-cli", "-h", host, "-p", port, "--raw", "GET", RESOURCE_TREE_KEY.format(app=app)],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        found: dict[str, Any] = json.loads(raw) if raw.strip() else {"nodes": []}
        return found

    try:
        yield {**state, "tree": tree}
    finally:
        sandbox.core.delete_namespaced_config_map(ARGOCD_NAME, ARGOCD_NAMESPACE)
        wait_until("Argo CD to stop", lambda: not state_file.exists(), timeout=120)


@pytest.fixture
def hook_runner(sandbox: Sandbox) -> str:
    """ServiceAccount default/hook-runner-<worker> (cluster-admin), so the hook's own requests can be told
    apart in the audit log."""
    sandbox.kubectl("create", "serviceaccount", HOOK_RUNNER, "-n", "default", check=False)
    sandbox.kubectl(
        "create",
        "clusterrolebinding",
        HOOK_RUNNER,
        "--clusterrole=cluster-admin",
        f"--serviceaccount=default:{HOOK_RUNNER}",
        check=False,
    )
    return HOOK_RUNNER


@pytest.fixture
def host_hub(sandbox: Sandbox, request: pytest.FixtureRequest) -> Iterator[None]:
    """For a test that makes an ITS of type host: the hosting cluster's hub, held until its ControlPlanes
    of type host are deleted (see hold_host_hub)."""
    assert uses_host_hub(request.node.nodeid), f"add {request.node.nodeid} to tests.scheduling.HOST_HUB"
    with hold_host_hub(sandbox):
        yield


@pytest.fixture
def kubeflex_holds_cluster_admin(sandbox: Sandbox, host_hub: None) -> Iterator[None]:
    """For a test that makes a host ControlPlane without the chart (a site that grants it itself,
    kubeflex.bindClusterAdminForHost=false): KubeFlex may bind the host space's ServiceAccount to
    cluster-admin only if it holds it."""
    name = unique("kubeflex-host")
    sandbox.kubectl(
        "create",
        "clusterrolebinding",
        name,
        "--clusterrole=cluster-admin",
        "--serviceaccount=kubeflex-system:kubeflex-controller-manager",
    )
    yield
    sandbox.kubectl("delete", "clusterrolebinding", name)


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
        if made_here(name):  # another worker's tests may be making theirs now
            sandbox.delete_controlplane(name)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A pytest-xdist worker hands what it reports to the controller, which prints the summary."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["reports"] = list(REPORTS)


def pytest_testnodedown(node: Any, error: Any) -> None:
    REPORTS.extend(getattr(node, "workeroutput", {}).get("reports", []))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in REPORTS:
        terminalreporter.write_line(line)
