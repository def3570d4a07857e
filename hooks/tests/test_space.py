"""Step `space`: when a ControlPlane counts as Ready, where its kubeconfig is, what is permanent."""

from __future__ import annotations

import pytest
from factories import its
from ks_its_hooks import space
from ks_its_hooks.errors import PermanentError
from ks_its_hooks.spec import SpaceRef

VCLUSTER = its("its1")


def cp(cp_type: str, ready: str | None = None, reason: str = "Available", **status: object) -> dict[str, object]:
    conditions = [{"type": "Ready", "status": ready, "reason": reason}] if ready else []
    return {"metadata": {"name": "its1"}, "spec": {"type": cp_type}, "status": {"conditions": conditions, **status}}


def test_controlplane_ready_only_on_ready_true_and_wrong_type_is_permanent() -> None:
    assert space.controlplane_pending(VCLUSTER, {}) == "ControlPlane does not exist yet"
    assert space.controlplane_pending(VCLUSTER, {"its1": cp("vcluster")}) == ("ControlPlane not Ready (no Ready condition yet)")
    assert space.controlplane_pending(VCLUSTER, {"its1": cp("vcluster", "False", "Creating")}) == (
        "ControlPlane not Ready (Creating)"
    )
    assert space.controlplane_pending(VCLUSTER, {"its1": cp("vcluster", "True")}) is None
    with pytest.raises(PermanentError, match="has type host, the ITS says vcluster"):
        space.controlplane_pending(VCLUSTER, {"its1": cp("host", "True")})


def test_a_not_synced_controlplane_says_why() -> None:
    pending_cp = cp("external", "False", "Creating")
    pending_cp["status"]["conditions"].append(  # type: ignore[index]
        {"type": "Synced", "status": "False", "reason": "ReconcileError", "message": "dial tcp: refused"}
    )
    assert space.controlplane_pending(its("its1", "external"), {"its1": pending_cp}) == (
        "ControlPlane not Ready (Creating); Synced=False (ReconcileError dial tcp: refused)"
    )


def test_secret_must_carry_the_in_cluster_key() -> None:
    ref = SpaceRef("its1-system", "vc-vcluster", "config-incluster")
    assert space.secret_pending(ref, {}) == "Secret its1-system/vc-vcluster does not exist yet"
    only_external = {"vc-vcluster": {"data": {"config": "eA=="}}}
    assert space.secret_pending(ref, only_external) == "Secret its1-system/vc-vcluster has no key config-incluster yet"
    assert space.secret_pending(ref, {"vc-vcluster": {"data": {"config-incluster": "eA=="}}}) is None


@pytest.mark.parametrize("text", ["token: s3cr3t-value\n", "- s3cr3t-value\n", "{clusters: [}"])
def test_invalid_kubeconfig_is_permanent_and_says_nothing_of_its_content(text: str) -> None:
    with pytest.raises(PermanentError) as err:
        space.client_for(text)
    assert "s3cr3t" not in str(err.value)
    assert str(err.value).startswith("the space kubeconfig is")
