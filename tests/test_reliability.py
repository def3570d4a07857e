"""Reliability and security on the sandbox (issue 7): bad input, faults, upgrades, privileges."""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.harness import (
    CHART,
    HOOK_RUNNER_USER,
    HookPod,
    Sandbox,
    assert_ready_its,
    container_state,
    create_its,
    hook_user,
    install,
    mutating,
    run_hook,
    unique,
    wait_until,
)
from tests.sandbox.faultproxy import FaultProxyProcess
from tests.sandbox.kube import as_object

pytestmark = pytest.mark.reliability
# A deadline far above what any run takes, even on a loaded machine: a run that ends well before it
# did not wait for it.
DEADLINE = 600


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("itses", "message"),
    [
        ([{"name": "its1", "install_clusteradm": "false"}], "at '/ITSes/0/install_clusteradm': got string, want boolean"),
        ([{"name": "a" * 57}], "at '/ITSes/0/name': maxLength: got 57, want 56"),
        ([{"name": "Its1"}], "at '/ITSes/0/name': 'Its1' does not match pattern"),
        ([{"name": "x1"}, {"name": "x1"}], 'ITSes[1].name: "x1" is already the name of ITSes[0]'),
        ([{"name": "kube"}], 'ITSes[0].name: "kube" would make kube-system the space\'s namespace'),
    ],
)
def test_bad_values_are_rejected_before_anything_reaches_the_cluster(
    sandbox: Sandbox, itses: list[dict[str, Any]], message: str
) -> None:
    namespace = unique("badvalues")
    since = time.time()
    result = install(sandbox, "helm3", "ks-its", namespace, itses, check=False)
    assert result.returncode != 0
    assert message in result.stderr
    writes = [
        e
        for e in sandbox.audit(since)
        if e["verb"] in {"create", "update", "patch", "delete"} and e.get("objectRef", {}).get("namespace") == namespace
    ]
    assert writes == []
    assert sandbox.kubectl("get", "namespace", namespace, check=False).returncode != 0


def test_a_name_at_the_length_limit_is_accepted_by_the_api_server(sandbox: Sandbox) -> None:
    name = "l" + unique("")[1:7] + "x" * 49
    assert len(name) == 56
    rendered = sandbox.helm(
        "helm3", "template", "ks-its", str(CHART), "-n", "default", "--set-json", f'ITSes=[{{"name":"{name}"}}]'
    ).stdout
    controlplane = next(doc for doc in yaml.safe_load_all(rendered) if doc and doc["kind"] == "ControlPlane")
    sandbox.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(controlplane))
    sandbox.kubectl("create", "namespace", f"{name}-system", "--dry-run=server")


@pytest.mark.parametrize("helm", ["helm3", "helm4"])
def test_an_its_whose_namespace_exists_is_refused_before_anything_is_applied(sandbox: Sandbox, helm: str) -> None:
    """KubeFlex takes an existing namespace as the space's as it is: an ITS whose `<name>-system`
    someone else made must never become a ControlPlane."""
    namespace, name = unique("taken"), unique("tk")
    sandbox.kubectl("create", "namespace", f"{name}-system")
    sandbox.kubectl("create", "configmap", "theirs", "-n", f"{name}-system", "--from-literal=k=v")
    time.sleep(1.1)  # audit timestamps have one-second resolution
    since = time.time()
    result = install(sandbox, helm, "ks-its", namespace, [{"name": name}], check=False)
    assert result.returncode != 0
    assert "failed pre-install" in result.stderr and "ks-its-preflight" in result.stderr, result.stderr
    assert sandbox.controlplane(name) is None
    [pod] = sandbox.core.list_namespaced_pod(namespace, label_selector="batch.kubernetes.io/job-name=ks-its-preflight").items
    assert container_state(pod).terminated.message == (
        f"ITS {name}: step preflight failed: namespace {name}-system already exists and is not KubeFlex's: KubeFlex "
        f"would take it as the space's namespace of ControlPlane {name} as it is; give the ITS another name\n"
    )

    # Nothing of the release's was applied, and the namespace and what it holds are untouched.
    def touched(event: dict[str, Any]) -> bool:
        """A write there by anyone but the controllers that fill every new namespace (its ServiceAccount)."""
        ref = event.get("objectRef", {})
        return not event.get("userAgent", "").startswith("kube-controller-manager/") and (
            ref.get("namespace") == f"{name}-system"
            or ref.get("name") == name
            or (ref.get("namespace") == namespace and ref.get("resource") == "configmaps")
        )

    assert mutating([e for e in sandbox.audit(since) if touched(e)]) == []
    assert sandbox.core.read_namespaced_config_map("theirs", f"{name}-system").data == {"k": "v"}
    sandbox.helm(helm, "uninstall", "ks-its", "--namespace", namespace, "--wait", check=False)
    sandbox.kubectl("delete", "namespace", f"{name}-system", "--wait=false")


@pytest.mark.parametrize(
    ("secret_data", "expected"),
    [
        (None, "bootstrap Secret default/{name}-bootstrap not found"),
        ({"wrong-key": "x"}, "bootstrap Secret default/{name}-bootstrap has no key kubeconfig-incluster"),
    ],
)
def test_external_its_with_a_bad_bootstrap_secret_fails_at_once_naming_it(
    sandbox: Sandbox, hook_runner: str, tmp_path: Path, secret_data: dict[str, str] | None, expected: str
) -> None:
    name = unique("ext-bad")
    if secret_data is not None:
        sandbox.kubectl(
            "create",
            "secret",
            "generic",
            f"{name}-bootstrap",
            "-n",
            "default",
            *[f"--from-literal={k}={v}" for k, v in secret_data.items()],
        )
    sandbox.create_controlplane(
        name, "external", {"name": f"{name}-bootstrap", "namespace": "default", "inClusterKey": "kubeconfig-incluster"}
    )
    since = time.time()
    started = time.monotonic()
    result = run_hook(sandbox, [{"name": name, "type": "external"}], deadline=DEADLINE)
    assert result.returncode == 3
    assert result.stderr.strip().splitlines()[-1] == f"ITS {name}: step space failed: " + expected.format(name=name)
    assert time.monotonic() - started < DEADLINE / 2, "a permanent error must not wait for the deadline"
    reads = [
        e
        for e in sandbox.audit(since)
        if e["user"]["username"] == HOOK_RUNNER_USER and e.get("objectRef", {}).get("name") == f"{name}-bootstrap"
    ]
    assert 1 <= len(reads) <= 3, "no retry storm"
    sandbox.delete_controlplane(name)


def test_unreachable_external_server_fails_at_the_deadline_with_kubeflex_reason(
    sandbox: Sandbox, hook_runner: str, tmp_path: Path
) -> None:
    name = unique("ext-down")
    config = yaml.safe_load(sandbox.external_incluster_kubeconfig.read_text())
    # Port 1 of the node's address: nothing listens there, so connections are refused.
    config["clusters"][0]["cluster"]["server"] = f"https://{sandbox.state['node_ip']}:1"
    path = tmp_path / "unreachable.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    sandbox.kubectl(
        "create", "secret", "generic", f"{name}-bootstrap", "-n", "default", f"--from-file=kubeconfig-incluster={path}"
    )
    sandbox.create_controlplane(
        name, "external", {"name": f"{name}-bootstrap", "namespace": "default", "inClusterKey": "kubeconfig-incluster"}
    )

    def reconcile_error() -> bool:
        conditions = ((sandbox.controlplane(name) or {}).get("status") or {}).get("conditions") or []
        return any(c["type"] == "Synced" and c.get("reason") == "ReconcileError" for c in conditions)

    # What is under test is that the hook relays KubeFlex's reason; on a loaded machine KubeFlex may
    # take longer than the hook's deadline to report it, so the hook starts once it has.
    wait_until(f"ControlPlane {name} Synced=False (ReconcileError)", reconcile_error, shown=lambda: sandbox.controlplane(name))
    result = run_hook(sandbox, [{"name": name, "type": "external"}], deadline=15)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    waited = re.match(rf"ITS {name}: step space failed: timed out after (\d+)s waiting for ControlPlane {name} Ready", last)
    assert waited, last
    assert int(waited.group(1)) >= 15, "it waited for the deadline"
    assert "Synced=False (ReconcileError" in last
    sandbox.delete_controlplane(name)


# --- timing ---------------------------------------------------------------------------------


def test_a_run_that_fails_at_its_deadline_reaches_helm_before_helm_gives_up(sandbox: Sandbox) -> None:
    """The README's command shape with a short deadline and the --timeout its rule gives (the
    deadline plus 2 minutes): Helm reports the hook Job's failure, whose pod holds the line naming the
    ITS, the step and the cause, and the Job does not run the hook again after its deadline."""
    namespace, release, stuck = unique("timing"), "ks-its", unique("tm")
    sandbox.set_faults(stuck, never_ready=True)
    try:
        started = time.monotonic()
        result = install(
            sandbox,
            "helm3",
            release,
            namespace,
            [{"name": stuck}],
            "--timeout",
            "150s",
            "--set",
            "its.readinessTimeoutSeconds=30",
            check=False,
        )
        took = time.monotonic() - started
        assert result.returncode != 0
        assert f"job {release}-hook failed: PodFailurePolicy" in result.stderr, result.stderr
        assert "timed out waiting for the condition" not in result.stderr, result.stderr
        assert took < 150, took
        pods = sandbox.core.list_namespaced_pod(namespace, label_selector=f"batch.kubernetes.io/job-name={release}-hook").items
        assert len(pods) == 1, "a hook that failed at its deadline was run again"
        message = container_state(pods[0]).terminated.message
        waited = re.fullmatch(
            rf"ITS {stuck}: step space failed: timed out after (\d+)s waiting for ControlPlane "
            rf"{stuck} Ready: .*\n",
            str(message),
        )
        assert waited and int(waited.group(1)) >= 30, message
    finally:
        sandbox.clear_faults(stuck)
    sandbox.helm("helm3", "uninstall", release, "--namespace", namespace, "--wait")


def test_a_deleted_hook_pod_is_replaced_without_using_up_a_retry(sandbox: Sandbox) -> None:
    namespace, release, name = unique("podgone"), "ks-its", unique("pg")

    def running_hook_pod() -> str | None:
        pods = sandbox.core.list_namespaced_pod(namespace, label_selector=f"batch.kubernetes.io/job-name={release}-hook").items
        return next((pod.metadata.name for pod in pods if pod.status.phase == "Running"), None)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        # No retry at all: a deletion counted as a failure would fail the install.
        installing = pool.submit(
            install, sandbox, "helm3", release, namespace, [{"name": name}], "--set", "hook.backoffLimit=0"
        )
        pod = wait_until("a running hook pod", running_hook_pod, interval=0.2)
        # Mid-run: once the hook logged its first line (a pod deleted before its Python runs ends at the
        # kubelet's SIGKILL, the hook has no say in it).
        wait_until(
            "the hook's first line", lambda: "step=" in sandbox.core.read_namespaced_pod_log(pod, namespace), interval=0.2
        )
        sandbox.core.delete_namespaced_pod(pod, namespace)  # as kubectl delete pod or a drain does: SIGTERM
        result = installing.result()
    assert result.returncode == 0, result.stderr
    # The deleted pod ended at once (not at the kubelet's SIGKILL 30 s later), saying what it left undone.
    log = sandbox.root / "logs" / "pods" / f"{namespace}_{pod}.log"
    wait_until("the deleted pod's log kept", log.exists)
    assert (
        log.read_text().splitlines()[-1]
        == f"ks-its-hook: install stopped by SIGTERM (pod deleted) before it finished: {name}; "
        "the next hook run (helm upgrade) takes them up again"
    )
    job = client.BatchV1Api(sandbox.api).read_namespaced_job(f"{release}-hook", namespace)
    assert (job.status.failed or 0, job.status.succeeded) == (0, 1)
    assert_ready_its(sandbox, name)
    sandbox.helm("helm3", "uninstall", release, "--namespace", namespace, "--wait")


# --- faults ---------------------------------------------------------------------------------


def space_apiserver_pid(name: str) -> int:
    """The kube-apiserver process in the space's pod (the stand-in vcluster chart's `vcluster` container)."""
    out = subprocess.run(
        ["pgrep", "-f", f"^/bin/kube-apiserver .*--etcd-prefix=/vcluster/{name}-system( |$)"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    assert len(out) == 1, out
    return int(out[0])


def test_space_api_server_killed_while_the_hook_waits(sandbox: Sandbox, hook_runner: str) -> None:
    """The space's container restarts (the kubelet's back-off, then etcd and the API server start).
    Down longer than 78 s under load, OCM's operator loses its lease, exits and may wait up to 2m43s
    to take it again (its leader election's own figures): the deadline only bounds a failure."""
    name = unique("kill-space")
    its = create_its(sandbox, name, "vcluster")
    hook = HookPod(sandbox, [its], deadline=600)
    # clusteradm has applied the hub, and the hook waits for it to serve.
    hook.read_until('msg="waiting for the ClusterManager to be applied and running"')
    os.kill(space_apiserver_pid(name), signal.SIGKILL)
    result = hook.wait()
    assert result.returncode == 0, result.stderr + hub_pods_and_endpoints(sandbox, name)
    assert_ready_its(sandbox, name)


def hub_pods_and_endpoints(sandbox: Sandbox, name: str) -> str:
    """For a failure's message: the hub's pods as the space and the hosting cluster see them, and the
    endpoints its webhooks are called at."""
    space = sandbox.space_api(name)
    lines = [
        f"EndpointSlice {es.metadata.name}: "
        + ", ".join(f"{','.join(ep.addresses)} ready={ep.conditions.ready}" for ep in es.endpoints or [])
        for es in client.DiscoveryV1Api(space).list_namespaced_endpoint_slice("open-cluster-management-hub").items
    ]
    for where, api, namespace in (
        ("space", client.CoreV1Api(space), "open-cluster-management-hub"),
        ("hosting", sandbox.core, f"{name}-system"),
    ):
        for pod in api.list_namespaced_pod(namespace).items:
            containers = [f"{c.name} ready={c.ready} restarts={c.restart_count}" for c in pod.status.container_statuses or []]
            lines.append(f"{where} pod {pod.metadata.name} {pod.status.phase} {pod.status.pod_ip}: {'; '.join(containers)}")
    return "\n" + "\n".join(lines)


def test_hosting_api_server_failing_for_a_while(sandbox: Sandbox, hook_runner: str) -> None:
    """The hook pod's API server resets connections for 6 s from the first: a proxy in the sandbox's
    namespace, in front of the hosting API server, given to the pod as its in-cluster address."""
    name = unique("flaky-host")
    its = create_its(sandbox, name, "vcluster")
    hosting_port = sandbox.state["hosting"].rsplit(":", 1)[1]
    with FaultProxyProcess(sandbox, f"127.0.0.1:{hosting_port}", fail_for=6) as proxy:
        # The deadline only bounds a failure: the ITS must come up despite the 6 s of resets.
        result = run_hook(
            sandbox,
            [its],
            deadline=300,
            env={"KUBERNETES_SERVICE_HOST": sandbox.state["node_ip"], "KUBERNETES_SERVICE_PORT": str(proxy.port)},
        )
    assert result.returncode == 0, result.stderr
    assert proxy.resets > 0
    assert "retrying" in result.stderr
    assert_ready_its(sandbox, name)


def end_state(sandbox: Sandbox, name: str) -> dict[str, Any]:
    """What an ITS is, without what differs by name or time."""
    cp = sandbox.controlplane(name) or {}
    space = sandbox.space_api(name)
    namespaces = sorted(str(ns.metadata.name) for ns in client.CoreV1Api(space).list_namespace().items)
    crds = sorted(str(c.metadata.name) for c in client.ApiextensionsV1Api(space).list_custom_resource_definition().items)
    cm = as_object(
        client.CustomObjectsApi(space).get_cluster_custom_object(
            "operator.open-cluster-management.io", "v1", "clustermanagers", "cluster-manager"
        )
    )
    return {
        "label": (cp["metadata"].get("labels") or {}).get("kflex.kubestellar.io/cptype"),
        "status": (cp["metadata"].get("annotations") or {}).get("its.kubestellar.io/status"),
        "namespaces": [n for n in namespaces if not n.startswith("only-in-")],
        "crds": crds,
        "clustermanager": sorted((c["type"], c["status"]) for c in cm["status"]["conditions"]),
    }


# Where a hook pod is killed: on the first log line that shows the hook got there.
KILL_POINTS = {
    "space": "step=space",
    "ocm-hub": 'msg="running clusteradm init"',
    "customization-properties": "step=customization-properties",
}


def test_hooks_killed_at_each_step_converge_to_the_end_state_of_an_uninterrupted_run(
    sandbox: Sandbox, hook_runner: str
) -> None:
    reference = create_its(sandbox, unique("ref"), "vcluster")
    uninterrupted = HookPod(sandbox, [reference])
    killed = {step: unique(f"killed-{step[:5]}") for step in KILL_POINTS}
    for name in killed.values():
        sandbox.set_faults(name, start_delay_s=3)
    try:
        itses = []
        for step, name in killed.items():
            # One at a time, each followed from its start: a hook started earlier could be past its point.
            itses.append(create_its(sandbox, name, "vcluster"))
            hook = HookPod(sandbox, [itses[-1]])
            hook.read_until(KILL_POINTS[step])
            hook.kill()  # the hook and its clusteradm, as a killed pod
        done = uninterrupted.wait()
        assert done.returncode == 0, done.stderr
        retry = run_hook(sandbox, itses)  # the Job's next pod, with every ITS of the killed ones
        assert retry.returncode == 0, retry.stderr
        expected = end_state(sandbox, reference["name"])
        for step, name in killed.items():
            assert end_state(sandbox, name) == expected, f"killed at step {step}"
    finally:
        for name in killed.values():
            sandbox.clear_faults(name)


FAKE_CLUSTERADM = """#!/usr/bin/python3
# clusteradm that fails FAIL_TIMES times, then runs the real one. It reports each call on the
# container's log (PID 1's stderr: the hook captures clusteradm's own output): the call number, the
# mode of the kubeconfig it was given, and whether an earlier call's kubeconfig is still there.
import os, sys
calls = int(open("/tmp/fake-calls").read()) if os.path.exists("/tmp/fake-calls") else 0
open("/tmp/fake-calls", "w").write(str(calls + 1))
path = sys.argv[sys.argv.index("--kubeconfig") + 1]
earlier = [p for p in open("/tmp/fake-paths").read().split()] if os.path.exists("/tmp/fake-paths") else []
open("/tmp/fake-paths", "a").write(path + "\\n")
with open("/proc/1/fd/2", "w") as log:
    print(f"fake-clusteradm call={calls + 1} mode={oct(os.stat(path).st_mode & 0o777)[2:]} "
          f"earlier_left={sum(os.path.exists(p) for p in earlier)}", file=log)
if calls < FAIL_TIMES:
    print(f"Error: injected failure number {calls}", file=sys.stderr)
    sys.exit(1)
os.execv("/usr/local/bin/clusteradm", ["clusteradm", *sys.argv[1:]])
"""


def fake_clusteradm(fail_times: int) -> dict[str, str]:
    return {"clusteradm": FAKE_CLUSTERADM.replace("FAIL_TIMES", str(fail_times))}


def fake_calls(logs: str) -> list[dict[str, str]]:
    return [
        dict(field.split("=", 1) for field in line.split()[1:])
        for line in logs.splitlines()
        if line.startswith("fake-clusteradm ")
    ]


def test_clusteradm_failing_once_is_retried_and_its_kubeconfig_is_private_and_removed(
    sandbox: Sandbox, hook_runner: str
) -> None:
    its = create_its(sandbox, unique("adm-once"), "vcluster")
    result = run_hook(sandbox, [its], files=fake_clusteradm(fail_times=1))
    assert result.returncode == 0, result.stderr
    calls = fake_calls(result.stderr)
    assert [call["call"] for call in calls] == ["1", "2"]
    assert (
        'msg="retrying clusteradm init" attempt=1 cause="clusteradm init exited 1: Error: injected failure number 0"'
        in result.stderr
    )
    assert {call["mode"] for call in calls} == {"600"}
    assert calls[1]["earlier_left"] == "0", "the first call's kubeconfig was removed"
    assert_ready_its(sandbox, its["name"])


def test_clusteradm_failing_always_fails_clearly_and_changes_nothing_else(sandbox: Sandbox, hook_runner: str) -> None:
    its = create_its(sandbox, unique("adm-never"), "vcluster")
    result = run_hook(sandbox, [its], files=fake_clusteradm(fail_times=99))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"ITS {its['name']}: step ocm-hub failed: clusteradm init exited 1: Error: injected failure number 2"
    )
    assert len(fake_calls(result.stderr)) == 3
    space = client.CoreV1Api(sandbox.space_api(its["name"]))
    assert "customization-properties" not in {ns.metadata.name for ns in space.list_namespace().items}
    cp = sandbox.controlplane(its["name"]) or {}
    assert "kflex.kubestellar.io/cptype" not in (cp["metadata"].get("labels") or {})
    assert cp["metadata"]["annotations"]["its.kubestellar.io/status"].startswith("Failed: ocm-hub: clusteradm init")


# --- one hub, one ITS -----------------------------------------------------------------------


def hub_owner(sandbox: Sandbox, its: str) -> str:
    cm = as_object(
        client.CustomObjectsApi(sandbox.space_api(its)).get_cluster_custom_object(
            "operator.open-cluster-management.io", "v1", "clustermanagers", "cluster-manager"
        )
    )
    return str(cm["metadata"]["annotations"]["its.kubestellar.io/its"])


@pytest.mark.usefixtures("kubeflex_holds_cluster_admin")
def test_a_hub_serves_one_its_and_refuses_a_second_naming_the_first(sandbox: Sandbox, hook_runner: str, tmp_path: Path) -> None:
    first, second = unique("hub-a"), unique("hub-b")
    sandbox.create_controlplane(first, "host")
    done = run_hook(sandbox, [{"name": first, "type": "host"}])
    assert done.returncode == 0, done.stderr
    assert hub_owner(sandbox, first) == first
    shared = (
        f"the space is already the hub of ITS {first} (ControlPlane {first}): two ITSes on one hub would share "
        "one inventory; give ITS {its} a space of its own"
    )
    # Another ITS of type host (another release's or another name's) ...
    sandbox.create_controlplane(second, "host")
    refused = run_hook(sandbox, [{"name": second, "type": "host"}], deadline=DEADLINE)
    assert refused.returncode == 3, refused.stderr
    assert refused.stderr.strip().splitlines()[-1] == f"ITS {second}: step ocm-hub failed: " + shared.format(its=second)
    # ... or an external ITS that adopts the hosting cluster is one hub too.
    adopter = unique("hub-ext")
    config = yaml.safe_load(sandbox.kubeconfig.read_text())
    port = sandbox.state["hosting"].rsplit(":", 1)[1]
    config["clusters"][0]["cluster"]["server"] = f"https://{sandbox.state['node_ip']}:{port}"
    (tmp_path / "hosting.kubeconfig").write_text(yaml.safe_dump(config))
    sandbox.kubectl(
        "create",
        "secret",
        "generic",
        f"{adopter}-bootstrap",
        "-n",
        "default",
        f"--from-file=kubeconfig-incluster={tmp_path / 'hosting.kubeconfig'}",
    )
    sandbox.create_controlplane(
        adopter, "external", {"name": f"{adopter}-bootstrap", "namespace": "default", "inClusterKey": "kubeconfig-incluster"}
    )
    try:
        refused = run_hook(sandbox, [{"name": adopter, "type": "external"}], deadline=DEADLINE)
        assert refused.returncode == 3, refused.stderr
        assert refused.stderr.strip().splitlines()[-1] == f"ITS {adopter}: step ocm-hub failed: " + shared.format(its=adopter)
    finally:
        sandbox.delete_controlplane(adopter)
        # What KubeFlex makes in a cluster it adopts, and never removes.
        sandbox.kubectl("delete", "clusterrolebinding", "kubeflex", "--ignore-not-found")
        sandbox.kubectl("delete", "serviceaccount", "kubeflex", "-n", "kube-system", "--ignore-not-found")
    assert hub_owner(sandbox, first) == first
    # Once the first ITS's ControlPlane is gone, the hub is free for the second.
    sandbox.delete_controlplane(first)
    wait_until(f"ControlPlane {first} deleted", lambda: sandbox.controlplane(first) is None)
    taken = run_hook(sandbox, [{"name": second, "type": "host"}])
    assert taken.returncode == 0, taken.stderr
    assert f'msg="recorded this ITS as the hub\'s owner" replaced={first}' in taken.stderr
    assert hub_owner(sandbox, second) == second
    assert_ready_its(sandbox, second)


# --- upgrades -------------------------------------------------------------------------------


def test_changing_an_its_type_is_rejected_and_nothing_is_lost(sandbox: Sandbox) -> None:
    namespace, name = unique("typechange"), unique("tc")
    install(sandbox, "helm3", "ks-its", namespace, [{"name": name}])
    before = sandbox.controlplane(name) or {}
    result = install(sandbox, "helm3", "ks-its", namespace, [{"name": name, "type": "host"}], check=False)
    assert result.returncode != 0
    assert f"ControlPlane {name}: spec.type cannot change from vcluster to host" in result.stderr
    after = sandbox.controlplane(name) or {}
    assert after["spec"]["type"] == "vcluster"
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert_ready_its(sandbox, name)


# --- privileges -----------------------------------------------------------------------------


def test_the_hook_holds_credentials_only_while_it_runs_and_only_its_release_s(sandbox: Sandbox) -> None:
    """`kubectl auth can-i` for the hook's ServiceAccount before, during and after an install: between
    runs nobody who may create pods in the release namespace finds a token that reads a space's
    credentials (a host ITS's is cluster-admin); during one, only this release's ITSes' credentials."""
    namespace, release, mine = unique("creds"), "ks-its", unique("cr")
    other = create_its(sandbox, unique("cr-other"), "vcluster")  # another release's ITS
    wait_until(f"namespace {other['name']}-system", lambda: sandbox.core.read_namespace(f"{other['name']}-system"))
    user = hook_user(namespace, release)

    def reads_credentials(its: str) -> bool:
        return (
            sandbox.kubectl(
                "auth", "can-i", "get", "secret/vc-vcluster", "-n", f"{its}-system", f"--as={user}", check=False
            ).stdout.strip()
            == "yes"
        )

    def account() -> bool:
        return sandbox.kubectl("get", "serviceaccount", f"{release}-hook", "-n", namespace, check=False).returncode == 0

    assert not account() and not reads_credentials(mine) and not reads_credentials(other["name"])
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        installing = pool.submit(install, sandbox, "helm3", release, namespace, [{"name": mine}])
        # The hook Job (weight 0) comes after the RoleBindings to the credentials (weight -10).
        wait_until(
            "the hook Job",
            lambda: sandbox.kubectl("get", "job", f"{release}-hook", "-n", namespace, check=False).returncode == 0,
            interval=0.2,
        )
        during = (account(), reads_credentials(mine), reads_credentials(other["name"]))
        assert not installing.done(), "the install ended before its hook could be observed"
        installing.result()
    assert during == (True, True, False)
    assert_ready_its(sandbox, mine)
    assert not account() and not reads_credentials(mine)
    gone: tuple[tuple[str, str, list[str]], ...] = (
        ("rolebinding", f"{release}-hook", ["-n", f"{mine}-system"]),
        ("rolebinding", f"{release}-hook", ["-n", namespace]),
        ("clusterrolebinding", f"{release}-{namespace}-hook", []),
    )
    for kind, name, where in gone:
        found = sandbox.kubectl("get", kind, name, *where, check=False)
        assert found.returncode != 0 and "NotFound" in found.stderr, (kind, name, where)
    sandbox.helm("helm3", "uninstall", release, "--namespace", namespace, "--wait")


def apply_hook_rbac(sandbox: Sandbox, namespace: str, itses: list[dict[str, Any]]) -> None:
    """The hook's ServiceAccount and RBAC as the install hooks make them (their namespaces first, as
    KubeFlex and the namespaces Job see to)."""
    rendered = sandbox.helm(
        "helm3", "template", "ks-its", str(CHART), "-n", namespace, "--set-json", f"ITSes={json.dumps(itses)}"
    ).stdout
    kinds = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    items = [
        doc
        for doc in yaml.safe_load_all(rendered)
        if doc
        and doc["kind"] in kinds
        and (doc["metadata"].get("annotations") or {}).get("argocd.argoproj.io/hook") in ("PostSync", None)
        and doc["metadata"]["labels"]["app.kubernetes.io/component"] == "hook"
    ]
    for its in itses:
        sandbox.kubectl("create", "namespace", f"{its['name']}-system", check=False)
    sandbox.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))


def test_hook_service_account_can_do_exactly_what_it_needs(sandbox: Sandbox, tmp_path: Path) -> None:
    namespace, mine, other = unique("rbac"), unique("mine"), unique("other")
    sandbox.kubectl("create", "namespace", namespace)
    sandbox.kubectl("create", "secret", "generic", f"{mine}-bootstrap", "-n", namespace, "--from-literal=k=v")
    sandbox.kubectl("create", "secret", "generic", "unrelated", "-n", namespace, "--from-literal=k=v")
    apply_hook_rbac(sandbox, namespace, [{"name": mine, "type": "external"}])
    user = f"system:serviceaccount:{namespace}:ks-its-hook"

    def can(*args: str) -> bool:
        return sandbox.kubectl("auth", "can-i", *args, f"--as={user}", check=False).stdout.strip() == "yes"

    assert can("get", f"controlplanes.tenancy.kflex.kubestellar.org/{mine}")
    assert can("patch", f"controlplanes.tenancy.kflex.kubestellar.org/{mine}")
    assert can("get", "secret/admin-kubeconfig", "-n", f"{mine}-system")
    assert can("get", f"secret/{mine}-bootstrap", "-n", namespace)
    assert can("get", f"namespace/{mine}-system") and can("get", "namespace/kube-system")
    # Any ControlPlane may be read (whether a hub's recorded owner lives), only the release's written.
    assert can("get", f"controlplanes.tenancy.kflex.kubestellar.org/{other}")
    assert not can("patch", f"controlplanes.tenancy.kflex.kubestellar.org/{other}")
    assert not can("delete", f"controlplanes.tenancy.kflex.kubestellar.org/{mine}")
    assert not can("create", "controlplanes.tenancy.kflex.kubestellar.org")
    assert not can("get", "secret/unrelated", "-n", namespace)
    assert not can("list", "secrets", "-n", "kube-system")
    # Space credentials of this release's ITSes only: not another ITS's, not the Secret of that name elsewhere.
    assert not can("get", "secret/admin-kubeconfig", "-n", f"{other}-system")
    assert not can("get", "secret/vc-vcluster", "-n", "kube-system")
    assert not can("get", f"namespace/{other}-system")
    assert not can("create", "pods", "-n", namespace)
    assert not can("create", "namespaces")
    assert not can("update", "secret/admin-kubeconfig", "-n", f"{mine}-system")
    # A hook run that tries an ITS it has no business with fails at once, with the cause.
    sandbox.create_controlplane(other, "vcluster")
    started = time.monotonic()
    result = run_hook(sandbox, [{"name": other}], deadline=DEADLINE, account="ks-its-hook", namespace=namespace)
    assert result.returncode == 3
    assert result.stderr.strip().splitlines()[-1] == f"ITS {other}: step space failed: API error 403 Forbidden"
    assert time.monotonic() - started < DEADLINE / 2, "a permanent error must not wait for the deadline"
    sandbox.delete_controlplane(other)
    sandbox.kubectl("delete", "namespace", f"{mine}-system", "--wait=false")
