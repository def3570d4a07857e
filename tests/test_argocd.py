"""The chart under a real Argo CD (the repo-server and application controller of the pinned release,
tests/sandbox/argocd.py), synced from the sandbox's OCI registry over TLS as the README's
Application says: the hook runs as a PostSync hook, ITSes come and go, kept spaces do not keep the
app OutOfSync, failures and bad values show where an Argo CD user looks."""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.harness import (
    CHART_VERSION,
    HOOK_AGENT,
    Sandbox,
    assert_ready_its,
    hold_host_hub,
    hook_user,
    mutating,
    unique,
    wait_until,
)
from tests.sandbox.kube import as_object
from tests.sandbox.servers import REPO

pytestmark = pytest.mark.argocd

APPS = ("argoproj.io", "v1alpha1", "argocd", "applications")
SYNC_TIMEOUT = 600


def readme_application() -> dict[str, Any]:
    """The Application of the README's Argo CD section, as a user copies it."""
    section = (REPO / "README.md").read_text().split("## Argo CD", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert block, "README's Argo CD section has no Application"
    application: dict[str, Any] = yaml.safe_load(block.group(1))
    assert application["kind"] == "Application"
    return application


def application(
    sandbox: Sandbox, argocd: dict[str, Any], name: str, namespace: str, itses: list[dict[str, Any]]
) -> dict[str, Any]:
    """The README's Application for the released chart in the sandbox's registry: its namespace, its
    ITSes and what a private registry needs (OCM's images and the status add-on's chart from there)."""
    app = copy.deepcopy(readme_application())
    app["metadata"]["name"] = name
    source = app["spec"]["source"]
    source.update(repoURL=argocd["repository"], targetRevision=CHART_VERSION)
    source["helm"]["valuesObject"] = {
        **source["helm"]["valuesObject"],
        **sandbox.image_values_object(hook_image=False),
        "ITSes": itses,
    }
    app["spec"]["destination"]["namespace"] = namespace
    return app


def get_app(sandbox: Sandbox, name: str) -> dict[str, Any]:
    return as_object(sandbox.custom.get_namespaced_custom_object(*APPS[:2], APPS[2], APPS[3], name))


def synced_and_healthy(sandbox: Sandbox, name: str, after: str = "") -> dict[str, Any] | None:
    """The app once an operation started after `after` (an RFC 3339 time) succeeded and the app is
    Synced and Healthy."""
    app = get_app(sandbox, name)
    status = app.get("status") or {}
    operation = status.get("operationState") or {}
    if (
        operation.get("phase") == "Succeeded"
        and operation.get("startedAt", "") > after
        and (status.get("sync") or {}).get("status") == "Synced"
        and (status.get("health") or {}).get("status") == "Healthy"
    ):
        return app
    return None


def summary(sandbox: Sandbox, name: str) -> dict[str, Any]:
    status = get_app(sandbox, name).get("status") or {}
    return {
        "sync": (status.get("sync") or {}).get("status"),
        "health": (status.get("health") or {}).get("status"),
        "operation": {k: (status.get("operationState") or {}).get(k) for k in ("phase", "message", "startedAt")},
        "conditions": status.get("conditions"),
    }


def hook_result(app: dict[str, Any]) -> dict[str, Any]:
    """The sync result of the hook Job (the preflight and namespaces Jobs are hooks too)."""
    resources = app["status"]["operationState"]["syncResult"]["resources"]
    name = app["metadata"]["name"]
    return next(r for r in resources if r["kind"] == "Job" and r.get("hookType") and r["name"] == f"{name}-hook")


def set_itses(sandbox: Sandbox, name: str, itses: list[dict[str, Any]]) -> None:
    patch = {"spec": {"source": {"helm": {"valuesObject": {"ITSes": itses}}}}}
    sandbox.custom.patch_namespaced_custom_object(*APPS[:2], APPS[2], APPS[3], name, patch)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))


def delete_app(sandbox: Sandbox, name: str) -> None:
    sandbox.kubectl("delete", "application", name, "-n", "argocd", "--ignore-not-found", "--wait=false")
    wait_until(
        f"Application {name} deleted (its finalizer ran)",
        lambda: sandbox.kubectl("get", "application", name, "-n", "argocd", check=False).returncode != 0,
        timeout=300,
    )


@pytest.fixture(scope="module")
def app(sandbox: Sandbox, argocd: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The README's Application with its two ITSes (renamed), synced to Synced/Healthy."""
    name, namespace = unique("its-app"), unique("argo")
    itses = [{"name": unique("argo-vc")}, {"name": unique("argo-host"), "type": "host"}]
    readme_itses = readme_application()["spec"]["source"]["helm"]["valuesObject"]["ITSes"]
    assert [its.get("type", "vcluster") for its in readme_itses] == ["vcluster", "host"]
    with hold_host_hub(sandbox):
        started = now()
        sandbox.kubectl("apply", "-f", "-", input=json.dumps(application(sandbox, argocd, name, namespace, itses)))
        synced = wait_until(
            "the Application Synced and Healthy",
            lambda: synced_and_healthy(sandbox, name, started),
            timeout=SYNC_TIMEOUT,
            shown=lambda: summary(sandbox, name),
        )
        yield {"name": name, "namespace": namespace, "itses": itses, "synced": synced}
        delete_app(sandbox, name)
        for its in itses:
            sandbox.delete_controlplane(its["name"])


def test_the_readme_application_syncs_and_runs_the_hook_as_post_sync(sandbox: Sandbox, app: dict[str, Any]) -> None:
    hook = hook_result(app["synced"])
    assert (hook["name"], hook["hookType"], hook["hookPhase"]) == (f"{app['name']}-hook", "PostSync", "Succeeded")
    for its in app["itses"]:
        assert_ready_its(sandbox, its["name"])
    # Skip: Argo CD never creates the `helm test` resources (their credentials would outlive a test).
    test_objects = [
        kind
        for kind in ("pod", "serviceaccount", "role", "rolebinding")
        if sandbox.kubectl("get", kind, f"{app['name']}-test", "-n", app["namespace"], check=False).returncode == 0
    ]
    assert test_objects == []
    cluster_test_objects = sandbox.kubectl(
        "get",
        "clusterroles,clusterrolebindings",
        "-o",
        "name",
        "-l",
        f"app.kubernetes.io/instance={app['name']},app.kubernetes.io/component=test",
    ).stdout.split()
    assert cluster_test_objects == []


def test_a_resync_replaces_the_hook_job_and_the_hook_writes_nothing(sandbox: Sandbox, app: dict[str, Any]) -> None:
    batch = client.BatchV1Api(sandbox.api)
    before = batch.read_namespaced_job(f"{app['name']}-hook", app["namespace"]).metadata.uid
    started, since = now(), time.time()
    operation = {
        "operation": {
            "initiatedBy": {"username": "ks-its-tests"},
            "sync": {"revision": CHART_VERSION, "syncStrategy": {"hook": {}}},
        }
    }
    sandbox.custom.patch_namespaced_custom_object(*APPS[:2], APPS[2], APPS[3], app["name"], operation)
    resynced = wait_until(
        "the re-sync to succeed",
        lambda: synced_and_healthy(sandbox, app["name"], started),
        timeout=SYNC_TIMEOUT,
        shown=lambda: summary(sandbox, app["name"]),
    )
    assert hook_result(resynced)["hookPhase"] == "Succeeded"
    after = batch.read_namespaced_job(f"{app['name']}-hook", app["namespace"]).metadata.uid
    assert after != before, "BeforeHookCreation: the re-sync runs a new hook Job"
    hook = hook_user(app["namespace"], app["name"])
    assert mutating(sandbox.audit(since), user=hook) == []
    # In a vcluster space only this hook writes; the hosting cluster, where hooks of other tests run at
    # the same time, is checked above by this hook's own ServiceAccount.
    for its in app["itses"]:
        if its.get("type", "vcluster") == "vcluster":
            assert mutating(sandbox.space_audit(since, its["name"]), agent=HOOK_AGENT) == []


def test_adding_an_its_makes_it_ready_and_removing_it_keeps_it_with_no_self_heal_loop(
    sandbox: Sandbox, app: dict[str, Any]
) -> None:
    added = {"name": unique("argo-add")}
    started = now()
    set_itses(sandbox, app["name"], [*app["itses"], added])
    wait_until(
        "the sync of the added ITS",
        lambda: synced_and_healthy(sandbox, app["name"], started),
        timeout=SYNC_TIMEOUT,
        shown=lambda: summary(sandbox, app["name"]),
    )
    assert_ready_its(sandbox, added["name"])

    started = now()
    set_itses(sandbox, app["name"], app["itses"])
    removed = wait_until(
        "the sync without the ITS",
        lambda: synced_and_healthy(sandbox, app["name"], started),
        timeout=SYNC_TIMEOUT,
        shown=lambda: summary(sandbox, app["name"]),
    )
    # Its space is kept (Prune=false), and it does not hold the app OutOfSync (IgnoreExtraneous).
    assert_ready_its(sandbox, added["name"])
    kept = next(r for r in removed["status"]["resources"] if r["kind"] == "ControlPlane" and r["name"] == added["name"])
    assert kept.get("requiresPruning") is True
    last = removed["status"]["operationState"]["startedAt"]
    # Were the app OutOfSync, automated self-heal would start new syncs 2, 6 and 18 s after the last.
    time.sleep(25)
    quiet = summary(sandbox, app["name"])
    assert (quiet["sync"], quiet["health"], quiet["operation"]["startedAt"]) == ("Synced", "Healthy", last), quiet


def test_a_failing_its_shows_its_cause_where_argo_cd_users_look(sandbox: Sandbox, argocd: dict[str, Any]) -> None:
    name, namespace, its = unique("its-fail"), unique("argo-fail"), unique("argo-ext")
    # An external ITS whose bootstrap Secret nobody created: a permanent failure.
    started = now()
    sandbox.kubectl(
        "apply", "-f", "-", input=json.dumps(application(sandbox, argocd, name, namespace, [{"name": its, "type": "external"}]))
    )
    try:

        def failed() -> dict[str, Any] | None:
            app = get_app(sandbox, name)
            operation = (app.get("status") or {}).get("operationState") or {}
            return app if operation.get("phase") == "Failed" and operation.get("startedAt", "") > started else None

        app = wait_until("the sync to fail for good", failed, timeout=SYNC_TIMEOUT, shown=lambda: summary(sandbox, name))
        line = f"ITS {its}: step space failed: bootstrap Secret {namespace}/{its}-bootstrap not found"
        operation = app["status"]["operationState"]
        # The README's retry policy: one retry of the sync, on top of the hook Job's own.
        retry = readme_application()["spec"]["syncPolicy"]["retry"]["limit"]
        assert operation.get("retryCount", 0) == retry, operation
        hook = hook_result(app)
        assert hook["hookPhase"] == "Failed"
        # The hook's message in the sync result names the failed pod and its exit code 3 (permanent).
        pod_name = re.search(rf"for pod {namespace}/(\S+) failed with exit code 3", hook["message"])
        assert pod_name, hook["message"]
        # The resource tree Argo CD's UI shows: that pod, Degraded, with the ITS, step and cause.
        nodes = {(node["kind"], node["name"]): node for node in argocd["tree"](name)["nodes"]}
        pod = nodes.get(("Pod", pod_name.group(1)))
        assert pod is not None, sorted(nodes)
        assert pod["health"] == {"status": "Degraded", "message": line + "\n"}
    finally:
        delete_app(sandbox, name)
        sandbox.delete_controlplane(its)


def test_a_bad_value_shows_the_schema_message_in_the_comparison_error(sandbox: Sandbox, argocd: dict[str, Any]) -> None:
    name, namespace = unique("its-bad"), unique("argo-bad")
    sandbox.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(application(sandbox, argocd, name, namespace, [{"name": "its1", "install_clusteradm": "false"}])),
    )
    try:

        def comparison_error() -> str | None:
            conditions = (get_app(sandbox, name).get("status") or {}).get("conditions") or []
            return next((c["message"] for c in conditions if c["type"] == "ComparisonError"), None)

        message = wait_until("a ComparisonError", comparison_error, timeout=180, shown=lambda: summary(sandbox, name))
        assert "at '/ITSes/0/install_clusteradm': got string, want boolean" in message, message
        assert sandbox.controlplane("its1") is None
    finally:
        delete_app(sandbox, name)


def test_deleting_the_application_keeps_every_controlplane(sandbox: Sandbox, app: dict[str, Any]) -> None:
    uids = {its["name"]: (sandbox.controlplane(its["name"]) or {})["metadata"]["uid"] for its in app["itses"]}
    delete_app(sandbox, app["name"])
    # Delete=false: the cascade deletes the release's other objects, never a space.
    assert {name: (sandbox.controlplane(name) or {}).get("metadata", {}).get("uid") for name in uids} == uids
    for its in app["itses"]:
        assert_ready_its(sandbox, its["name"])
    config = sandbox.kubectl("get", "configmap", f"{app['name']}-its-config", "-n", app["namespace"], check=False)
    assert config.returncode != 0 and "NotFound" in config.stderr
