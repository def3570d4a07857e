"""Step `registration`: what the hook writes on the ControlPlane, and when it writes nothing."""

from __future__ import annotations

from ks_its_hooks import registration
from ks_its_hooks.manifests import render


def test_registration_is_written_once_and_a_failure_keeps_an_existing_label() -> None:
    fresh = {"metadata": {"name": "its1"}}
    labels, annotations = registration.desired_metadata(fresh, "Ready", 0) or ({}, {})
    assert labels == {"kflex.kubestellar.io/cptype": "its"}
    assert annotations == {"its.kubestellar.io/status": "Ready", "its.kubestellar.io/status-time": "1970-01-01T00:00:00Z"}
    done = {"metadata": {"labels": labels, "annotations": annotations}}
    assert registration.desired_metadata(done, "Ready", 99) is None  # idempotent: nothing to write
    failed_later = registration.desired_metadata(done, "Failed: space: x", 99)
    assert failed_later is not None and failed_later[0] == labels
    never_ready = registration.desired_metadata(fresh, "Failed: space: x", 0)
    assert never_ready is not None and never_ready[0] == {}


def test_the_apply_body_holds_only_the_fields_the_hook_owns() -> None:
    body = render(
        "registration.yaml.j2",
        name="its1",
        labels={"kflex.kubestellar.io/cptype": "its"},
        annotations={"its.kubestellar.io/status": 'Failed: space: "quoted"'},
    )
    assert body == {
        "apiVersion": "tenancy.kflex.kubestellar.org/v1alpha1",
        "kind": "ControlPlane",
        "metadata": {
            "name": "its1",
            "labels": {"kflex.kubestellar.io/cptype": "its"},
            "annotations": {"its.kubestellar.io/status": 'Failed: space: "quoted"'},
        },
    }
    unlabelled = render("registration.yaml.j2", name="its1", labels={}, annotations={"a": "b"})
    assert "labels" not in unlabelled["metadata"]
