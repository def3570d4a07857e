"""Step `ocm-hub`: when the hub counts as ready, the clusteradm command, and what stays private."""

from __future__ import annotations

from ks_its_hooks import ocm_hub
from ks_its_hooks.readiness import crds_pending
from ks_its_hooks.spec import OcmSettings


def test_hub_is_ready_only_when_applied_and_every_crd_established() -> None:
    established = {name: {"status": {"conditions": [{"type": "Established", "status": "True"}]}}
                   for name in ocm_hub.HUB_CRDS}
    assert crds_pending(ocm_hub.HUB_CRDS, established) is None
    missing = dict(established)
    missing["manifestworks.work.open-cluster-management.io"] = {"status": {"conditions": []}}
    assert crds_pending(ocm_hub.HUB_CRDS, missing) == "CRDs not Established: manifestworks.work.open-cluster-management.io"
    applied = {"cluster-manager": {"status": {"conditions": [{"type": "Applied", "status": "True"}]}}}
    assert ocm_hub.clustermanager_pending(applied) is None
    assert ocm_hub.clustermanager_pending({}) == "ClusterManager cluster-manager does not exist"
    not_yet = {"cluster-manager": {"status": {"conditions": [
        {"type": "Applied", "status": "False", "reason": "ApplyFailed", "message": "x"}]}}}
    assert ocm_hub.clustermanager_pending(not_yet) == "ClusterManager not Applied (ApplyFailed x)"


def test_clusteradm_command_passes_registry_and_bundle_only_when_set() -> None:
    assert ocm_hub.init_command(OcmSettings("", "default"), "/k") == [
        "clusteradm", "init", "--kubeconfig", "/k", "--bundle-version", "default"]
    mirrored = ocm_hub.init_command(OcmSettings("mirror.local/ocm", "v0.13.1"), "/k")
    assert mirrored[-3:] == ["v0.13.1", "--image-registry", "mirror.local/ocm"]


def clustermanager(**conditions: str) -> dict[str, dict[str, object]]:
    return {"cluster-manager": {"status": {"conditions": [
        {"type": kind, "status": status, "reason": f"{kind}Reason"} for kind, status in conditions.items()]}}}


def test_an_applied_hub_is_not_ready_while_it_progresses_or_is_degraded() -> None:
    serving = {"Applied": "True", "Progressing": "False", "HubRegistrationDegraded": "False",
               "HubPlacementDegraded": "False"}
    assert ocm_hub.clustermanager_pending(clustermanager(**serving)) is None
    assert ocm_hub.clustermanager_pending(clustermanager(**{**serving, "Progressing": "True"})) == (
        "ClusterManager Progressing=True (ProgressingReason)")
    assert ocm_hub.clustermanager_pending(clustermanager(**{**serving, "HubRegistrationDegraded": "True"})) == (
        "ClusterManager HubRegistrationDegraded=True (HubRegistrationDegradedReason)")
