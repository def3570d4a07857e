"""Step `ocm-hub`: when the hub counts as ready, the clusteradm command, and what stays private."""

from __future__ import annotations

import subprocess

from ks_its_hooks import ocm_hub
from ks_its_hooks.errors import PermanentError, TransientError
from ks_its_hooks.readiness import crds_pending
from ks_its_hooks.spec import HubOptions, OcmSettings


def test_hub_is_ready_only_when_applied_and_every_crd_established() -> None:
    established = {name: {"status": {"conditions": [{"type": "Established", "status": "True"}]}} for name in ocm_hub.HUB_CRDS}
    assert crds_pending(ocm_hub.HUB_CRDS, established) is None
    missing = dict(established)
    missing["manifestworks.work.open-cluster-management.io"] = {"status": {"conditions": []}}
    assert crds_pending(ocm_hub.HUB_CRDS, missing) == "CRDs not Established: manifestworks.work.open-cluster-management.io"
    applied = {"cluster-manager": {"status": {"conditions": [{"type": "Applied", "status": "True"}]}}}
    assert ocm_hub.clustermanager_pending(applied) is None
    assert ocm_hub.clustermanager_pending({}) == "ClusterManager cluster-manager does not exist"
    not_yet = {
        "cluster-manager": {
            "status": {"conditions": [{"type": "Applied", "status": "False", "reason": "ApplyFailed", "message": "x"}]}
        }
    }
    assert ocm_hub.clustermanager_pending(not_yet) == "ClusterManager not Applied (ApplyFailed x)"


def test_clusteradm_command_passes_registry_bundle_and_hub_options_only_when_set() -> None:
    assert ocm_hub.init_command(OcmSettings("", "default"), HubOptions(), "/k") == [
        "clusteradm",
        "init",
        "--kubeconfig",
        "/k",
        "--bundle-version",
        "default",
    ]
    mirrored = ocm_hub.init_command(OcmSettings("mirror.local/ocm", "v0.13.1"), HubOptions(), "/k")
    assert mirrored[-3:] == ["v0.13.1", "--image-registry", "mirror.local/ocm"]
    options = HubOptions(
        feature_gates=(("ManagedClusterAutoApproval", True), ("ResourceCleanup", False)),
        qos_class="ResourceRequirement",
        requests=(("cpu", "10m"), ("memory", "64Mi")),
        limits=(("memory", "512Mi"),),
    )
    assert ocm_hub.init_command(OcmSettings("", "default"), options, "/k")[6:] == [
        "--feature-gates",
        "ManagedClusterAutoApproval=true,ResourceCleanup=false",
        "--resource-qos-class",
        "ResourceRequirement",
        "--resource-requests",
        "cpu=10m,memory=64Mi",
        "--resource-limits",
        "memory=512Mi",
    ]


def clustermanager(**conditions: str) -> dict[str, dict[str, object]]:
    return {
        "cluster-manager": {
            "status": {
                "conditions": [
                    {"type": kind, "status": status, "reason": f"{kind}Reason"} for kind, status in conditions.items()
                ]
            }
        }
    }


def test_an_applied_hub_is_not_ready_while_it_progresses_or_is_degraded() -> None:
    serving = {"Applied": "True", "Progressing": "False", "HubRegistrationDegraded": "False", "HubPlacementDegraded": "False"}
    assert ocm_hub.clustermanager_pending(clustermanager(**serving)) is None
    assert ocm_hub.clustermanager_pending(clustermanager(**{**serving, "Progressing": "True"})) == (
        "ClusterManager Progressing=True (ProgressingReason)"
    )
    assert ocm_hub.clustermanager_pending(clustermanager(**{**serving, "HubRegistrationDegraded": "True"})) == (
        "ClusterManager HubRegistrationDegraded=True (HubRegistrationDegradedReason)"
    )


def test_the_hub_records_its_owner_and_refuses_a_second_live_its() -> None:
    me = ocm_hub.HubOwner("its2", "uid-2", "hosting-a")
    recorded = ocm_hub.HubOwner("its1", "uid-1", "hosting-a")
    cm = {"metadata": {"annotations": recorded.annotations()}}
    assert ocm_hub.recorded_owner(cm) == recorded
    assert ocm_hub.recorded_owner({"metadata": {}}) is None
    # Nobody's, or this ITS's: take it (again).
    assert ocm_hub.owner_conflict(None, me, recorded_alive=False) is None
    assert ocm_hub.owner_conflict(me, me, recorded_alive=True) is None
    # Another ITS of this hosting cluster whose ControlPlane is gone (removed, then re-added under a new uid).
    assert ocm_hub.owner_conflict(recorded, me, recorded_alive=False) is None
    assert ocm_hub.owner_conflict(recorded, me, recorded_alive=True) == (
        "the space is already the hub of ITS its1 (ControlPlane its1): two ITSes on one hub would share one "
        "inventory; give ITS its2 a space of its own"
    )
    elsewhere = ocm_hub.HubOwner("its1", "uid-1", "hosting-b")
    conflict = ocm_hub.owner_conflict(elsewhere, me, recorded_alive=False)
    assert conflict is not None
    assert conflict.startswith(
        "the space is already the hub of ITS its1 of another hosting cluster (kube-system uid hosting-b)"
    )
    assert "remove the annotations its.kubestellar.io/its" in conflict


def test_a_bundle_clusteradm_does_not_have_fails_at_once_and_other_init_failures_are_retried() -> None:
    ocm = OcmSettings("", "v0.9.0")
    # What clusteradm v0.8.1 says (tests/test_chart_facts.py asks it).
    said = "Error: couldn't find the requested version bundle: 0.9.0\n"
    unknown = ocm_hub.clusteradm_failure(subprocess.CompletedProcess([], 1, "", said), ocm, "init")
    assert isinstance(unknown, PermanentError)
    assert str(unknown) == (
        "ocm.bundleVersion v0.9.0 is not a bundle the hook image's clusteradm can install "
        "(the chart's schema lists those it has)"
    )
    refused = subprocess.CompletedProcess([], 1, "", "Error: connection refused\n")
    other = ocm_hub.clusteradm_failure(refused, ocm, "init --dry-run")
    assert isinstance(other, TransientError)
    assert str(other) == "clusteradm init --dry-run exited 1: Error: connection refused"


def test_the_hub_is_brought_to_its_settings_only_when_the_recorded_ones_differ() -> None:
    def clustermanager(**annotations: str) -> dict[str, object]:
        return {"metadata": {"annotations": annotations}}

    assert ocm_hub.recorded_settings(clustermanager()) is None
    recorded = clustermanager(**{ocm_hub.SETTINGS_REGISTRY: "", ocm_hub.SETTINGS_BUNDLE: "default"})
    assert ocm_hub.recorded_settings(recorded) == OcmSettings("", "default")
    assert ocm_hub.recorded_settings(recorded) != OcmSettings("mirror.local/ocm", "default")


def test_the_images_a_hub_is_brought_to_are_those_clusteradm_renders() -> None:
    operator = {
        "kind": "Deployment",
        "metadata": {"name": "cluster-manager", "namespace": "open-cluster-management"},
        "spec": {
            "template": {"spec": {"containers": [{"name": "registration-operator", "image": "r/registration-operator:v1"}]}}
        },
    }
    clustermanager = {
        "kind": "ClusterManager",
        "metadata": {"name": "cluster-manager"},
        "spec": {"registrationImagePullSpec": "r/registration:v1", "workImagePullSpec": "r/work:v1", "deployOption": {}},
    }
    namespace = {"kind": "Namespace", "metadata": {"name": "open-cluster-management"}}
    assert ocm_hub.hub_images([namespace, operator, clustermanager]) == (
        "r/registration-operator:v1",
        {"registrationImagePullSpec": "r/registration:v1", "workImagePullSpec": "r/work:v1"},
    )
