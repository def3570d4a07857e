"""Proof that the sandbox is real: the real KubeFlex operator makes ControlPlanes of each type Ready
with working credentials,
the real clusteradm initializes a hub, Jobs run through the real Job controller, and Helm sees
their results."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.harness import Sandbox, container_state, unique, wait_until
from tests.sandbox.host import CONTAINER_LOG_LINKS, UNIFIED, Host
from tests.sandbox.kube import manifest, secret_text
from tests.sandbox.servers import REPO, pid_alive
from tests.sandbox.supervisor import down, state, up


def ready(sandbox: Sandbox, name: str) -> bool:
    cp = sandbox.controlplane(name) or {}
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (cp.get("status") or {}).get("conditions", []))


@pytest.mark.parametrize("cp_type", ["vcluster", "host", "external"])
def test_controlplane_of_each_type_becomes_ready_with_working_credentials(
    sandbox: Sandbox, cp_type: str, request: pytest.FixtureRequest
) -> None:
    name = unique(f"sb-{cp_type[:4]}")
    bootstrap = None
    if cp_type == "host":
        request.getfixturevalue("kubeflex_holds_cluster_admin")
    if cp_type == "external":
        sandbox.create_bootstrap_secret(f"{name}-bootstrap", "default")
        bootstrap = {"name": f"{name}-bootstrap", "namespace": "default", "inClusterKey": "kubeconfig-incluster"}
    sandbox.create_controlplane(name, cp_type, bootstrap)
    wait_until(f"ControlPlane {name} Ready", lambda: ready(sandbox, name), timeout=240, interval=0.2)
    cp = sandbox.controlplane(name)
    assert cp is not None
    assert "kflex.kubestellar.org/finalizer" in cp["metadata"]["finalizers"]
    conditions = {c["type"]: c for c in cp["status"]["conditions"]}
    assert conditions["Synced"]["reason"] == "ReconcileSuccess"
    assert conditions["Ready"]["reason"] == "Available"
    namespace = sandbox.core.read_namespace(f"{name}-system")
    assert [ref.name for ref in namespace.metadata.owner_references or []] == [name]
    # KubeFlex writes the space's in-cluster kubeconfig where the chart tells the hook to find it.
    [its] = sandbox.rendered_its_json([{"name": name, "type": cp_type}])["itses"]
    written = cp["status"]["secretRef"]
    assert (written["namespace"], written["name"], written["inClusterKey"]) == (
        its["space"]["namespace"],
        its["space"]["credentials"]["secret"],
        its["space"]["credentials"]["key"],
    )
    secret = sandbox.core.read_namespaced_secret(written["name"], written["namespace"])
    assert written["inClusterKey"] in (secret.data or {})
    # The credentials reach the space and are allowed to act there.
    space = client.CoreV1Api(sandbox.space_api(name))
    assert any(ns.metadata.name == "default" for ns in space.list_namespace().items)
    if cp_type == "external":
        with pytest.raises(client.exceptions.ApiException) as gone:
            sandbox.core.read_namespaced_secret(f"{name}-bootstrap", "default")
        assert gone.value.status == 404  # KubeFlex deletes the bootstrap Secret after adoption
    if cp_type == "vcluster":
        # A separate API server: what is created in the space is not in the hosting cluster.
        space.create_namespace(manifest({"metadata": {"name": f"only-in-{name}"}}))
        with pytest.raises(client.exceptions.ApiException):
            sandbox.core.read_namespace(f"only-in-{name}")
        # The key for use outside the hosting cluster names the server KubeFlex asked the chart for (its
        # ingress host); here it reaches the same space at its NodePort (space_api, above).
        secret = sandbox.core.read_namespaced_secret("vc-vcluster", f"{name}-system")
        outside = yaml.safe_load(secret_text(secret, "config"))
        assert outside["clusters"][0]["cluster"]["server"] == f"https://{name}.localtest.me:9443"
        space.read_namespace(f"only-in-{name}")
    sandbox.delete_controlplane(name)
    wait_until(f"ControlPlane {name} deleted", lambda: sandbox.controlplane(name) is None, timeout=240, interval=0.2)


@pytest.mark.parametrize("exit_code", [0, 1])
def test_helm_install_wait_sees_the_indexed_hook_job_result(sandbox: Sandbox, exit_code: int) -> None:
    release = unique("hookexit")
    result = sandbox.helm(
        "helm3",
        "install",
        release,
        str(REPO / "tests" / "charts" / "hook-exit"),
        "-n",
        "default",
        "--wait",
        "--timeout",
        "120s",
        "--set",
        f"exitCode={exit_code}",
        "--set",
        f"image={sandbox.registry}/sandbox/shell:bookworm",
        check=False,
    )
    job = client.BatchV1Api(sandbox.api).read_namespaced_job(f"{release}-hook", "default")
    conditions = {c.type: c.status for c in job.status.conditions or []}
    if exit_code == 0:
        assert result.returncode == 0, result.stderr
        assert job.status.succeeded == 3
        assert conditions.get("Complete") == "True"
        assert conditions.get("SuccessCriteriaMet") == "True"
        pods = sandbox.core.list_namespaced_pod("default", label_selector=f"batch.kubernetes.io/job-name={release}-hook")
        assert sorted(container_state(p).terminated.exit_code for p in pods.items) == [0, 0, 0]
        # The node's container logs, kept by the sandbox (those of the hook image for the secret scan).
        logs = wait_until(
            "the hook pods' logs kept",
            lambda: sorted((sandbox.root / "logs" / "workloads").glob(f"default_{release}-hook-*.log")),
            timeout=60,
            interval=0.2,
        )
        assert sorted(p.read_text().strip() for p in logs) == ["index=0", "index=1", "index=2"]
    else:
        assert result.returncode != 0
        assert "failed" in result.stderr.lower()
        assert conditions.get("Failed") == "True"
    sandbox.helm("helm3", "uninstall", release, "-n", "default", check=False)


def assert_nothing_left(root: Path, port: int) -> None:
    """No process, namespace, cgroup, mount or directory of the sandbox at root; its port free."""
    host = Host(root)
    assert state(root) is None
    assert not (UNIFIED / host.id).exists(), "the sandbox's cgroup (its processes) is still there"
    assert host.netns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert str(root) not in Path("/proc/self/mountinfo").read_text()
    assert not [link for link in CONTAINER_LOG_LINKS.glob("*.log") if str(root) in os.readlink(link)], (
        "the kubelet's log links into the sandbox are still there"
    )
    assert not root.exists()
    with socket.socket() as sock:
        # SO_REUSEADDR lets connections the API server closed linger in TIME_WAIT (the kernel's
        # business, not a leak) while bind still fails if any process is listening on the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()  # the relay's port is free again


def test_sandbox_restarts_cleanly_after_a_killed_run(tmp_path: Path) -> None:
    """A killed supervisor (its servers, node and containers left running) must not break the next
    `up`; `down` then takes everything back."""
    root = REPO / ".cache" / f"sandbox-restart-{tmp_path.name[-6:]}"
    try:
        first = up(root)
        subprocess.run(["kill", "-9", str(first["pid"])], check=True)
        # SIGKILL is delivered asynchronously: a process can still be exiting when kill(1) returns.
        wait_until("killed supervisor to exit", lambda: not pid_alive(first["pid"]), timeout=30, interval=0.2)
        second = up(root)
        assert second["pid"] != first["pid"]
        port = int(second["hosting"].rsplit(":", 1)[1])
    finally:
        down(root)
    assert_nothing_left(root, port)


def test_a_killed_test_session_leaves_nothing_running(tmp_path: Path) -> None:
    """A session holds its sandbox by a lifeline: SIGKILL the session and the sandbox tears itself down."""
    root = REPO / ".cache" / f"sandbox-orphan-{tmp_path.name[-6:]}"
    session = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import json, os, sys, time\n"
                "from pathlib import Path\n"
                "from tests.sandbox.supervisor import up\n"
                "lifeline, keep = os.pipe()\n"
                f"print(json.dumps(up(Path({str(root)!r}), lifeline=lifeline)), flush=True)\n"
                "time.sleep(3600)\n"
            ),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert session.stdout is not None
        started = json.loads(session.stdout.readline())
        assert pid_alive(started["pid"])
        session.kill()
        session.wait()
        wait_until(
            "the orphaned sandbox to tear itself down and its supervisor to exit",
            lambda: not root.exists() and not pid_alive(started["pid"]),
            timeout=180,
            interval=0.2,
        )
        assert_nothing_left(root, int(started["hosting"].rsplit(":", 1)[1]))
    finally:
        session.kill()
        down(root)
