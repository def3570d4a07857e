"""When the space's namespace is ready for the hook's credentials (the wait runs against a real API
server in tests/)."""

from __future__ import annotations

from typing import Any

import pytest
from factories import its
from ks_its_hooks.errors import PermanentError
from ks_its_hooks.namespaces import namespace_pending

ITS1 = its("its1")


def owned(by: str, uid: str, deleting: bool = False) -> dict[str, dict[str, Any]]:
    metadata: dict[str, Any] = {
        "name": "its1-system",
        "ownerReferences": [
            {
                "apiVersion": "tenancy.kflex.kubestellar.org/v1alpha1",
                "kind": "ControlPlane",
                "name": by,
                "uid": uid,
                "controller": True,
            }
        ],
    }
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-07T00:00:00Z"
    return {"its1-system": {"metadata": metadata}}


def test_ready_once_kubeflex_made_it_for_this_controlplane() -> None:
    assert namespace_pending(ITS1, "u1", {}) == "namespace its1-system does not exist yet (KubeFlex makes it)"
    assert namespace_pending(ITS1, "u1", owned("its1", "u1")) is None


def test_a_namespace_of_an_earlier_controlplane_of_the_same_name_is_waited_out() -> None:
    assert (
        namespace_pending(ITS1, "u2", owned("its1", "u1", deleting=True))
        == "namespace its1-system is still being deleted with an earlier ControlPlane its1"
    )
    assert namespace_pending(ITS1, "u1", owned("its1", "u1", deleting=True)) == "namespace its1-system is being deleted"


@pytest.mark.parametrize(
    ("objects", "held"),
    [
        ({"its1-system": {"metadata": {"name": "its1-system"}}}, "not made by KubeFlex"),
        (owned("its2", "u1"), "ControlPlane its2's"),
    ],
)
def test_a_namespace_kubeflex_did_not_make_for_the_its_fails_at_once(objects: dict[str, Any], held: str) -> None:
    with pytest.raises(PermanentError, match=f"^namespace its1-system is {held}: it existed before ControlPlane its1"):
        namespace_pending(ITS1, "u1", objects)
