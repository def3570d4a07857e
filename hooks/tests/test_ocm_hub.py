"""Step `ocm-hub`: when the hub counts as ready, the clusteradm command, and what stays private."""

from __future__ import annotations

import os
import stat

from ks_its_hooks import ocm_hub
from ks_its_hooks.spec import OcmSettings


def test_hub_is_ready_only_when_applied_and_every_crd_established() -> None:
    established = {name: {"status": {"conditions": [{"type": "Established", "status": "True"}]}}
                   for name in ocm_hub.HUB_CRDS}
    assert ocm_hub.crds_pending(established) is None
    missing = dict(established)
    missing["manifestworks.work.open-cluster-management.io"] = {"status": {"conditions": []}}
    assert ocm_hub.crds_pending(missing) == "CRDs not Established: manifestworks.work.open-cluster-management.io"
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


def test_clusteradm_output_is_redacted() -> None:
    text = ("clusteradm join --hub-token abc.0123456789abcdef --hub-apiserver https://x\n"
            "token: eyJhbGciOiJSUzI1NiJ9.payload.sig")
    redacted = ocm_hub.redact(text)
    assert "0123456789abcdef" not in redacted and "eyJhbGciOiJSUzI1NiJ9" not in redacted
    assert "--hub-apiserver https://x" in redacted


def test_private_kubeconfig_is_0600_and_removed() -> None:
    with ocm_hub.private_kubeconfig("secret") as path:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        with open(path) as handle:
            assert handle.read() == "secret"
    assert not os.path.exists(path) and not os.path.exists(os.path.dirname(path))
