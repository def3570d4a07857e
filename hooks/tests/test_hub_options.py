"""Hub options: what clusteradm init is given, what is recorded, and a changed option refused."""

from __future__ import annotations

from ks_its_hooks import hub_options
from ks_its_hooks.spec import HubOptions

AUTO = HubOptions(feature_gates=(("ManagedClusterAutoApproval", True),))
SIZED = HubOptions(qos_class="ResourceRequirement", requests=(("cpu", "10m"),), limits=(("memory", "512Mi"),))


def made_with(options: HubOptions | None) -> dict[str, object]:
    annotations = {} if options is None else {hub_options.RECORDED: hub_options.encode(options)}
    return {"metadata": {"annotations": annotations}}


def test_a_hub_serves_with_the_options_it_was_made_with_and_refuses_others_saying_what_to_do() -> None:
    assert hub_options.changed(made_with(AUTO), AUTO) is None
    assert hub_options.changed(made_with(None), SIZED) is None  # no record: taken as it is
    assert hub_options.changed(made_with(AUTO), HubOptions()) == (
        "the hub was made with feature gates ManagedClusterAutoApproval=true, resources Default, not feature "
        "gates none, resources Default; clusteradm sets a hub's feature gates and resources only when it makes "
        "the hub: set ocm.featureGates and ocm.resources back, or delete the ITS's ControlPlane for a new space and hub"
    )
    assert "resources ResourceRequirement requests cpu=10m limits memory=512Mi" in (
        hub_options.changed(made_with(SIZED), HubOptions()) or ""
    )


def test_the_record_is_canonical_so_a_re_run_writes_nothing() -> None:
    same = HubOptions(feature_gates=(("ManagedClusterAutoApproval", True),))
    assert hub_options.encode(same) == hub_options.encode(AUTO)
    assert hub_options.encode(HubOptions()) == '{"featureGates":{},"limits":{},"qosClass":"Default","requests":{}}'
