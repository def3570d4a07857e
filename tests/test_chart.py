"""The chart end to end on the sandbox, the way users run it: upgrades that add, keep and remove
ITSes, uninstall with and without keeping spaces, every manifest accepted by the API server. (A first
install, helm test and uninstall with helm 3 and helm 4: test_lifecycle.py.)"""

from __future__ import annotations

import json
import time

import yaml

from tests.harness import (
    CHART,
    HOOK_AGENT,
    Sandbox,
    assert_ready_its,
    dry_run_apply,
    hook_user,
    install,
    mutating,
    unique,
)


def release_controlplanes(sandbox: Sandbox, release: str, namespace: str) -> set[str]:
    """The names of the ControlPlanes in the release's current manifest."""
    manifest = sandbox.helm("helm3", "get", "manifest", release, "--namespace", namespace).stdout
    return {doc["metadata"]["name"] for doc in yaml.safe_load_all(manifest) if doc and doc["kind"] == "ControlPlane"}


def test_upgrades_add_keep_and_remove_itses(sandbox: Sandbox) -> None:
    namespace, release = unique("e2e-upg"), "ks-its"
    first, second, third = (unique(f"up{i}") for i in range(3))
    install(sandbox, "helm3", release, namespace, [{"name": first}, {"name": second}])
    assert release_controlplanes(sandbox, release, namespace) == {first, second}
    # Add an ITS.
    install(sandbox, "helm3", release, namespace, [{"name": first}, {"name": second}, {"name": third}])
    for name in (first, second, third):
        assert_ready_its(sandbox, name)
    # Change nothing: the hook runs again and writes nothing.
    time.sleep(1.1)
    since = time.time()
    install(sandbox, "helm3", release, namespace, [{"name": first}, {"name": second}, {"name": third}])
    time.sleep(0.5)
    events = sandbox.audit(since)
    user = hook_user(namespace, release)
    assert [e for e in events if e["user"]["username"] == user], "the hook did not run on the no-op upgrade"
    assert mutating(events, user) == []
    for name in (first, second, third):
        assert mutating(sandbox.space_audit(since, name), agent=HOOK_AGENT) == []
    # helm rollback (revision 4 = revision 2).
    sandbox.helm("helm3", "rollback", release, "2", "--namespace", namespace, "--wait")
    # Remove an ITS: its space survives (keepSpaces is the default).
    install(sandbox, "helm3", release, namespace, [{"name": first}, {"name": third}])
    assert_ready_its(sandbox, second)
    assert release_controlplanes(sandbox, release, namespace) == {first, third}
    # Listing the kept ITS again adopts its existing space. (A rollback to such a revision fails
    # in Helm itself, helm/helm#13462: README, troubleshooting.)
    uid = (sandbox.controlplane(second) or {})["metadata"]["uid"]
    install(sandbox, "helm3", release, namespace, [{"name": first}, {"name": second}, {"name": third}])
    assert (sandbox.controlplane(second) or {})["metadata"]["uid"] == uid
    assert_ready_its(sandbox, second)
    sandbox.helm("helm3", "uninstall", release, "--namespace", namespace, "--wait")
    for name in (first, second, third):
        assert sandbox.controlplane(name) is not None


def test_opting_out_of_keep_deletes_spaces_on_uninstall(sandbox: Sandbox) -> None:
    namespace, release, name = unique("e2e-del"), "ks-its", unique("gone")
    install(sandbox, "helm3", release, namespace, [{"name": name}], "--set", "its.keepSpaces=false")
    assert_ready_its(sandbox, name)
    sandbox.helm("helm3", "uninstall", release, "--namespace", namespace, "--wait")
    end = time.monotonic() + 60
    while sandbox.controlplane(name) is not None and time.monotonic() < end:
        time.sleep(0.5)
    assert sandbox.controlplane(name) is None


def test_every_rendered_manifest_is_accepted_by_the_api_server(sandbox: Sandbox) -> None:
    namespace = unique("dryrun")
    sandbox.kubectl("create", "namespace", namespace)
    rendered = sandbox.helm(
        "helm3",
        "template",
        "ks-its",
        str(CHART),
        "--namespace",
        namespace,
        "-f",
        str(CHART / "ci" / "three-types-values.yaml"),
        "--set",
        "test.enabled=true",
    ).stdout
    docs = [doc for doc in yaml.safe_load_all(rendered) if doc]
    kinds = [doc["kind"] for doc in docs]
    assert {"ControlPlane", "Job", "ClusterRole", "Pod", "ValidatingAdmissionPolicy"} <= set(kinds)
    # A Pod is admitted only once its ServiceAccount exists: create those for real first.
    accounts = [doc for doc in docs if doc["kind"] == "ServiceAccount"]
    sandbox.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": accounts}))
    result = dry_run_apply(sandbox, docs, namespace)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("(server dry run)") == len(kinds)


def test_hook_pod_template_passes_restricted_admission(sandbox: Sandbox) -> None:
    namespace = unique("restricted")
    sandbox.kubectl("create", "namespace", namespace)
    sandbox.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    rendered = sandbox.helm(
        "helm3", "template", "ks-its", str(CHART), "--namespace", namespace, "--set-json", 'ITSes=[{"name":"its1"}]'
    ).stdout
    docs = [doc for doc in yaml.safe_load_all(rendered) if doc]
    jobs = {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == "Job"}
    assert set(jobs) == {"ks-its-preflight", "ks-its-namespaces", "ks-its-hook", "ks-its-cleanup"}
    test_pod = next(doc for doc in docs if doc["kind"] == "Pod")
    job_pods = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"{name}-pod", "namespace": namespace},
            "spec": job["spec"]["template"]["spec"],
        }
        for name, job in jobs.items()
    ]
    hook_pod = next(pod for pod in job_pods if pod["metadata"]["name"] == "ks-its-hook-pod")
    for account in (doc for doc in docs if doc["kind"] == "ServiceAccount"):
        sandbox.kubectl("apply", "-f", "-", input=json.dumps(account))
    for pod in (*job_pods, test_pod):
        result = sandbox.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
        assert result.returncode == 0, result.stderr
    # The namespace really enforces: a pod that runs as root is refused.
    root_pod = {**hook_pod, "spec": {**hook_pod["spec"], "securityContext": {}}}
    refused = sandbox.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(root_pod), check=False)
    assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr
