"""Part of step `ocm-hub`, for hubs the hook installs: an ITS's hub options (feature gates, and the
QoS class, requests and limits of the hub's containers), which clusteradm v0.8.1 takes only when it
makes a hub (`init`; its `upgrade` keeps the gates and drops the resources). So they are given to
`clusteradm init`, recorded on the ClusterManager, and a hub made with other options fails its ITS
with a line saying so, never silently keeping the old ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from . import bootstrap_identity, kube
from .errors import DeadlineExceeded, PermanentError
from .spec import HubOptions
from .step import Context

RECORDED = "its.kubestellar.io/ocm-hub-options"
AUTO_APPROVAL = "ManagedClusterAutoApproval"


def joined(pairs: Iterable[tuple[str, object]]) -> str:
    """`name=value,...` as clusteradm's flags take them (booleans as true/false)."""
    return ",".join(f"{name}={str(value).lower() if isinstance(value, bool) else value}" for name, value in pairs)


def init_flags(hub: HubOptions) -> list[str]:
    """clusteradm init's flags for the options that differ from its defaults."""
    flags = []
    if hub.feature_gates:
        flags += ["--feature-gates", joined(hub.feature_gates)]
    if hub.qos_class != HubOptions.qos_class:
        flags += ["--resource-qos-class", hub.qos_class]
    for flag, quantities in (("--resource-requests", hub.requests), ("--resource-limits", hub.limits)):
        if quantities:
            flags += [flag, joined(quantities)]
    return flags


def encode(hub: HubOptions) -> str:
    return json.dumps(
        {
            "featureGates": dict(hub.feature_gates),
            "qosClass": hub.qos_class,
            "requests": dict(hub.requests),
            "limits": dict(hub.limits),
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def describe(encoded: str) -> str:
    options = json.loads(encoded)
    gates = joined(options["featureGates"].items()) or "none"
    resources = options["qosClass"] + "".join(
        f" {kind} {joined(options[kind].items())}" for kind in ("requests", "limits") if options[kind]
    )
    return f"feature gates {gates}, resources {resources}"


def recorded(clustermanager: dict[str, Any]) -> str | None:
    return ((clustermanager.get("metadata") or {}).get("annotations") or {}).get(RECORDED)


def changed(clustermanager: dict[str, Any], hub: HubOptions) -> str | None:
    """Why the hub cannot serve with these options, or None. A hub without a record (made before
    options were recorded, or the run that made it stopped before recording) is taken as it is."""
    was = recorded(clustermanager)
    if was is None or was == encode(hub):
        return None
    return (
        f"the hub was made with {describe(was)}, not {describe(encode(hub))}; clusteradm sets a hub's feature "
        "gates and resources only when it makes the hub: set ocm.featureGates and ocm.resources back, or delete "
        "the ITS's ControlPlane for a new space and hub"
    )


def check(ctx: Context, clustermanager: dict[str, Any]) -> None:
    why = changed(clustermanager, ctx.its.hub)
    if why is not None:
        raise PermanentError(why)


def record(ctx: Context, clustermanager: dict[str, Any]) -> dict[str, str]:
    """The annotation that records the options, when it is missing or differs."""
    return {} if recorded(clustermanager) == encode(ctx.its.hub) else {RECORDED: encode(ctx.its.hub)}


def ensure_auto_approved(ctx: Context) -> None:
    """With ManagedClusterAutoApproval, clusteradm v0.8.1 lists only its own bootstrap identities as
    users the hub approves: clusteradm 1.0's joins them, so that KubeStellar's WECs need no accept. The
    write is conditional on the ClusterManager's version: changed meanwhile, it is decided again."""
    if not ctx.its.hub.gate(AUTO_APPROVAL):
        return
    while True:
        clustermanager = ctx.space.client.get(kube.CLUSTERMANAGERS, kube.CLUSTER_MANAGER)
        if clustermanager is None:
            raise PermanentError(f"ClusterManager {kube.CLUSTER_MANAGER} is gone")
        registration = (clustermanager.get("spec") or {}).get("registrationConfiguration") or {}
        users = list(registration.get("autoApproveUsers") or [])
        if bootstrap_identity.USER in users:
            return
        patch = {
            "metadata": {"resourceVersion": clustermanager["metadata"]["resourceVersion"]},
            "spec": {"registrationConfiguration": {"autoApproveUsers": [*users, bootstrap_identity.USER]}},
        }
        if (
            ctx.space.client.patch(kube.CLUSTERMANAGERS, kube.CLUSTER_MANAGER, patch, "adding an auto-approved user")
            is not None
        ):
            ctx.info("the hub auto-approves clusteradm 1.0's bootstrap identity", user=bootstrap_identity.USER)
            return
        if ctx.deadline.expired():
            raise DeadlineExceeded(
                f"timed out after {ctx.deadline.elapsed():.0f}s: ClusterManager {kube.CLUSTER_MANAGER} changed at every try"
            )
