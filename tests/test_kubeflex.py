"""What only the real KubeFlex operator shows (issue 30): its RBAC for a host ITS, its deletion of a
space, its restart in the middle of an install, its one worker serving two releases at once, and its
adoption of an external cluster before the hook runs again."""

from __future__ import annotations

import concurrent.futures
import re
from typing import Any

import pytest
from kubernetes import client

from tests.harness import Sandbox, assert_ready_its, container_state, install, unique, wait_until
from tests.sandbox.kube import manifest, or_none

KUBEFLEX_NAMESPACE = "kubeflex-system"
KUBEFLEX_PODS = "control-plane=controller-manager"


def kubeflex_pods(sandbox: Sandbox) -> set[str]:
    return {
        str(pod.metadata.name)
        for pod in sandbox.core.list_namespaced_pod(KUBEFLEX_NAMESPACE, label_selector=KUBEFLEX_PODS).items
    }


@pytest.mark.usefixtures("host_hub")
def test_a_host_its_needs_kubeflex_to_hold_cluster_admin_and_the_hook_says_so(sandbox: Sandbox) -> None:
    """Without the chart's binding, KubeFlex (its own chart's RBAC) may not bind the host space's
    ServiceAccount to cluster-admin: the hook fails at its deadline naming KubeFlex's reason. With
    it, the same release comes up ready on the next upgrade."""
    namespace, release, name = unique("kf-host"), "ks-its", unique("kf-host")
    itses = [{"name": name, "type": "host"}]
    granting = [
        str(binding.metadata.name)
        for binding in client.RbacAuthorizationV1Api(sandbox.api).list_cluster_role_binding().items
        if binding.role_ref.name == "cluster-admin"
        and any(subject.name == "kubeflex-controller-manager" for subject in binding.subjects or [])
    ]
    assert granting == [], f"another test left KubeFlex bound to cluster-admin: {granting}"
    refused = install(
        sandbox,
        "helm3",
        release,
        namespace,
        itses,
        "--set",
        "kubeflex.bindClusterAdminForHost=false",
        "--set",
        "its.readinessTimeoutSeconds=45",
        "--timeout",
        "170s",
        check=False,
    )
    assert refused.returncode != 0
    pods = sandbox.core.list_namespaced_pod(namespace, label_selector=f"batch.kubernetes.io/job-name={release}-hook").items
    message = str(container_state(pods[0]).terminated.message)
    assert re.fullmatch(
        rf"ITS {name}: step space failed: timed out after \d+s waiting for ControlPlane {name} Ready: "
        r"ControlPlane not Ready \(no Ready condition yet\); Synced=False \(ReconcileError .*"
        r"attempting to grant RBAC permissions not currently held.*\)\n",
        message,
        re.DOTALL,
    ), message
    granted = install(sandbox, "helm3", release, namespace, itses, "--set", "its.keepSpaces=false", check=False)
    assert granted.returncode == 0, granted.stderr
    assert_ready_its(sandbox, name)
    # KubeFlex's binding of the host space is the ControlPlane's: it goes with it.
    binding = f"{name}-binding"
    owners = client.RbacAuthorizationV1Api(sandbox.api).read_cluster_role_binding(binding).metadata.owner_references
    assert [(o.kind, o.name) for o in owners] == [("ControlPlane", name)]
    sandbox.helm("helm3", "uninstall", release, "--namespace", namespace, "--wait")
    wait_until(f"space {name} deleted on uninstall", lambda: sandbox.space_gone(name), timeout=300)
    rbac = client.RbacAuthorizationV1Api(sandbox.api)
    assert or_none(rbac.read_cluster_role_binding, binding) is None


def test_a_removed_its_is_deleted_by_kubeflex_and_comes_back_as_a_new_space(sandbox: Sandbox) -> None:
    """With keepSpaces false: removing an ITS from the list deletes its space (ControlPlane, namespace,
    the space's pods); listing it again makes a new, empty one; uninstall deletes it again."""
    namespace, release, name = unique("kf-readd"), "ks-its", unique("kf-readd")
    keep_off = ("--set", "its.keepSpaces=false")
    install(sandbox, "helm3", release, namespace, [{"name": name}], *keep_off)
    first_uid = (sandbox.controlplane(name) or {})["metadata"]["uid"]
    marker = {"metadata": {"name": "left-by-the-first-space", "namespace": "default"}}
    client.CoreV1Api(sandbox.space_api(name)).create_namespaced_config_map("default", manifest(marker))

    install(sandbox, "helm3", release, namespace, [], *keep_off)
    wait_until(f"space {name} deleted", lambda: sandbox.space_gone(name), timeout=300)

    install(sandbox, "helm3", release, namespace, [{"name": name}], *keep_off)
    assert (sandbox.controlplane(name) or {})["metadata"]["uid"] != first_uid
    assert_ready_its(sandbox, name)
    left = or_none(client.CoreV1Api(sandbox.space_api(name)).read_namespaced_config_map, marker["metadata"]["name"], "default")
    assert left is None, "the re-added ITS got the old space back"

    sandbox.helm("helm3", "uninstall", release, "--namespace", namespace, "--wait")
    wait_until(f"space {name} deleted on uninstall", lambda: sandbox.space_gone(name), timeout=300)


def test_kubeflex_restarted_during_an_install(sandbox: Sandbox) -> None:
    """KubeFlex's pod is deleted while the ITS's space is being made: its Deployment's next pod takes
    over (after the leader lease) and the install completes."""
    namespace, release, name = unique("kf-restart"), "ks-its", unique("kf-restart")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        installing = pool.submit(
            install, sandbox, "helm3", release, namespace, [{"name": name}], "--set", "its.keepSpaces=false", check=False
        )
        wait_until(f"ControlPlane {name} taken up by KubeFlex", lambda: (sandbox.controlplane(name) or {}).get("status"))
        before = {
            p.metadata.name for p in sandbox.core.list_namespaced_pod(KUBEFLEX_NAMESPACE, label_selector=KUBEFLEX_PODS).items
        }
        sandbox.kubectl("delete", "pod", "-n", KUBEFLEX_NAMESPACE, "-l", KUBEFLEX_PODS, "--wait=false")
        result = installing.result()
    assert result.returncode == 0, result.stderr
    after = kubeflex_pods(sandbox)
    assert after and not after & before, "KubeFlex's pod was not replaced"
    assert_ready_its(sandbox, name)
    sandbox.helm("helm3", "uninstall", release, "--namespace", namespace, "--wait")


def test_two_releases_installed_at_once(sandbox: Sandbox) -> None:
    """Two teams' releases, each with its ITSes, at the same time: KubeFlex's one worker serves
    both, and each hook waits only for its own."""
    releases: dict[str, list[dict[str, Any]]] = {
        unique("kf-team-a"): [{"name": unique("kf-a1")}, {"name": unique("kf-a2")}],
        unique("kf-team-b"): [{"name": unique("kf-b1")}],
    }
    with concurrent.futures.ThreadPoolExecutor(len(releases)) as pool:
        running = {
            namespace: pool.submit(
                install, sandbox, "helm3", "ks-its", namespace, itses, "--set", "its.keepSpaces=false", check=False
            )
            for namespace, itses in releases.items()
        }
        results = {namespace: future.result() for namespace, future in running.items()}
    for namespace, result in results.items():
        assert result.returncode == 0, f"{namespace}: {result.stderr}"
    for itses in releases.values():
        for its in itses:
            assert_ready_its(sandbox, its["name"])
            labels = ((sandbox.controlplane(its["name"]) or {})["metadata"].get("labels")) or {}
            assert labels.get("kflex.kubestellar.io/cptype") == "its"
    for namespace in releases:
        sandbox.helm("helm3", "uninstall", "ks-its", "--namespace", namespace, "--wait")


def test_an_external_its_adopted_by_kubeflex_is_taken_up_again_by_the_next_hook_run(sandbox: Sandbox) -> None:
    """KubeFlex consumes the bootstrap Secret (deletes it once it wrote admin-kubeconfig): the next
    `helm upgrade` runs the hook again over the adopted space, without the Secret."""
    namespace, release, name = unique("kf-adopt"), "ks-its", unique("kf-adopt")
    sandbox.create_bootstrap_secret(f"{name}-bootstrap", namespace)
    itses = [{"name": name, "type": "external"}]
    keep_off = ("--set", "its.keepSpaces=false")
    install(sandbox, "helm3", release, namespace, itses, *keep_off)
    assert or_none(sandbox.core.read_namespaced_secret, f"{name}-bootstrap", namespace) is None, "not consumed"
    assert (sandbox.core.read_namespaced_secret("admin-kubeconfig", f"{name}-system").data or {})["kubeconfig-incluster"]
    again = install(sandbox, "helm3", release, namespace, itses, *keep_off, "--set", "its.readinessTimeoutSeconds=300")
    assert again.returncode == 0, again.stderr
    assert_ready_its(sandbox, name)
    # This worker's external cluster is one hub: free it for the next external ITS.
    sandbox.helm("helm3", "uninstall", release, "--namespace", namespace, "--wait")
    wait_until(f"space {name} deleted on uninstall", lambda: sandbox.space_gone(name), timeout=300)
