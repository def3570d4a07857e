"""Part of step `ocm-hub`, for hubs the hook installs: the bootstrap identity of clusteradm 1.0.x,
which KubeStellar 0.30 onboards WECs with (`clusteradm get token`, `join`, `accept`), beside the one
clusteradm v0.8.1's `init` made (ServiceAccount `cluster-bootstrap`), which keeps working.

Made when absent; an object of that name someone else made is kept as it is when it grants what a
WEC's bootstrap needs, and refused (never overwritten) when it does not. A re-run writes nothing.
"""

from __future__ import annotations

from typing import Any

from . import FIELD_MANAGER, kube
from .errors import PermanentError
from .manifests import render_all
from .step import Context

NAMESPACE = "open-cluster-management"
SERVICE_ACCOUNT = "agent-registration-bootstrap"
CLUSTER_ROLE = "open-cluster-management:bootstrap"
CLUSTER_ROLE_BINDING = "open-cluster-management:bootstrap:agent-registration"
USER = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"  # as a CSR's requester
KINDS = {
    "ServiceAccount": kube.SERVICEACCOUNTS,
    "ClusterRole": kube.CLUSTERROLES,
    "ClusterRoleBinding": kube.CLUSTERROLEBINDINGS,
}


def manifests() -> list[dict[str, Any]]:
    return render_all(
        "bootstrap-identity.yaml.j2",
        namespace=NAMESPACE,
        service_account=SERVICE_ACCOUNT,
        cluster_role=CLUSTER_ROLE,
        cluster_role_binding=CLUSTER_ROLE_BINDING,
        labels={"app.kubernetes.io/managed-by": FIELD_MANAGER},
    )


def grants(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) of every rule, wildcards as written."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups") or []
        for resource in rule.get("resources") or []
        for verb in rule.get("verbs") or []
    }


def allows(granted: set[tuple[str, str, str]], group: str, resource: str, verb: str) -> bool:
    return any(g in (group, "*") and r in (resource, "*") and v in (verb, "*") for g, r, v in granted)


def shortfall(existing: dict[str, Any], wanted: dict[str, Any]) -> str | None:
    """Why an existing object of the identity's does not serve as the wanted one, or None when it does."""
    if wanted["kind"] == "ClusterRole":
        granted = grants(existing.get("rules") or [])
        missing = sorted(need for need in grants(wanted["rules"]) if not allows(granted, *need))
        return f"it does not allow {', '.join(f'{v} {r}' for _, r, v in missing)}" if missing else None
    if wanted["kind"] == "ClusterRoleBinding":
        if (existing.get("roleRef") or {}).get("name") != wanted["roleRef"]["name"]:
            return f"it binds ClusterRole {(existing.get('roleRef') or {}).get('name')}, not {wanted['roleRef']['name']}"
        subject = wanted["subjects"][0]
        if not any(
            s.get("kind") == "ServiceAccount"
            and s.get("name") == subject["name"]
            and s.get("namespace") == subject["namespace"]
            for s in existing.get("subjects") or []
        ):
            return f"it does not bind ServiceAccount {subject['namespace']}/{subject['name']}"
    return None


def check(ctx: Context, wanted: dict[str, Any]) -> None:
    """The object is there and serves as the wanted one."""
    kind, meta = KINDS[wanted["kind"]], wanted["metadata"]
    what = kind.describe(meta["name"], meta.get("namespace"))
    existing = ctx.space.client.get(kind, meta["name"], meta.get("namespace"))
    if existing is None:
        raise PermanentError(f"the hub has no {what}")
    why = shortfall(existing, wanted)
    if why is not None:
        raise PermanentError(
            f"{what} exists but does not serve clusteradm 1.0's WEC bootstrap: {why}; "
            "delete it and run the hook again (helm upgrade)"
        )


def ensure(ctx: Context) -> None:
    made = []
    for wanted in manifests():
        kind, meta = KINDS[wanted["kind"]], wanted["metadata"]
        absent = ctx.space.client.get(kind, meta["name"], meta.get("namespace")) is None
        if absent and ctx.space.client.create(kind, wanted, meta.get("namespace")) is not None:
            made.append(kind.describe(meta["name"], meta.get("namespace")))
            continue
        check(ctx, wanted)  # someone else's, or made meanwhile by another writer
    if made:
        ctx.info("made clusteradm 1.0's WEC bootstrap identity", objects=", ".join(made))


def verify(ctx: Context) -> None:
    for wanted in manifests():
        check(ctx, wanted)
