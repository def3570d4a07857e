"""The preflight's verdict on an ITS's namespace (the reads run against a real API server in tests/)."""

from __future__ import annotations

from typing import Any

from factories import its
from ks_its_hooks.preflight import refusal


def namespace(owner: str | None = None, kind: str = "ControlPlane", controller: bool = True) -> dict[str, Any]:
    refs = (
        []
        if owner is None
        else [
            {
                "apiVersion": "tenancy.kflex.kubestellar.org/v1alpha1",
                "kind": kind,
                "name": owner,
                "uid": "u1",
                "controller": controller,
            }
        ]
    )
    return {"metadata": {"name": "x", "ownerReferences": refs}}


def test_a_namespace_that_does_not_exist_or_is_kubeflex_s_for_the_its_is_fine() -> None:
    assert refusal(its("its1"), None) is None
    # KubeFlex's for a ControlPlane of this name: this ITS's, or one still being deleted with an earlier one.
    assert refusal(its("its1"), namespace("its1")) is None


def test_a_namespace_kubeflex_did_not_make_for_the_its_is_refused_naming_it() -> None:
    expected = (
        "namespace kube-system already exists and is not KubeFlex's: KubeFlex would take it as the space's "
        "namespace of ControlPlane kube as it is; give the ITS another name"
    )
    assert refusal(its("kube"), namespace()) == expected
    assert refusal(its("kube"), namespace("kube", kind="Deployment")) == expected
    assert refusal(its("kube"), namespace("kube", controller=False)) == expected
    assert refusal(its("its1"), namespace("its2")) == (
        "namespace its1-system already exists and is ControlPlane its2's: KubeFlex would take it as the space's "
        "namespace of ControlPlane its1 as it is; give the ITS another name"
    )
