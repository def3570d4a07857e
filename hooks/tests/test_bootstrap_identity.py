"""clusteradm 1.0's WEC bootstrap identity: what the hook makes, and what it accepts of someone else's."""

from __future__ import annotations

from typing import Any

from ks_its_hooks import bootstrap_identity as identity


def wanted(kind: str) -> dict[str, Any]:
    return next(doc for doc in identity.manifests() if doc["kind"] == kind)


def test_the_identity_has_clusteradm_1_0_names_and_exactly_the_bootstrap_rights() -> None:
    docs = {doc["kind"]: doc for doc in identity.manifests()}
    assert docs["ServiceAccount"]["metadata"] | {"labels": None} == {
        "name": "agent-registration-bootstrap",
        "namespace": "open-cluster-management",
        "labels": None,
    }
    assert docs["ClusterRole"]["metadata"]["name"] == "open-cluster-management:bootstrap"
    assert identity.grants(docs["ClusterRole"]["rules"]) == {
        ("", "configmaps", "get"),
        *(("certificates.k8s.io", "certificatesigningrequests", v) for v in ("create", "get", "list", "watch")),
        *(("cluster.open-cluster-management.io", "managedclusters", v) for v in ("get", "create", "list", "watch")),
        ("cluster.open-cluster-management.io", "managedclustersets/join", "create"),
    }
    binding = docs["ClusterRoleBinding"]
    assert binding["metadata"]["name"] == "open-cluster-management:bootstrap:agent-registration"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "open-cluster-management:bootstrap",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "agent-registration-bootstrap", "namespace": "open-cluster-management"}
    ]


def test_someone_elses_object_is_kept_when_it_grants_enough_and_named_when_it_does_not() -> None:
    role = wanted("ClusterRole")
    assert identity.shortfall(role, role) is None
    assert identity.shortfall({"rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}, role) is None
    fewer = {"rules": [rule for rule in role["rules"] if rule["resources"] != ["managedclustersets/join"]]}
    assert identity.shortfall(fewer, role) == "it does not allow create managedclustersets/join"
    binding = wanted("ClusterRoleBinding")
    assert identity.shortfall(binding, binding) is None
    other_role = {**binding, "roleRef": {**binding["roleRef"], "name": "view"}}
    assert identity.shortfall(other_role, binding) == "it binds ClusterRole view, not open-cluster-management:bootstrap"
    no_subject = {**binding, "subjects": [{"kind": "Group", "name": "system:bootstrappers:managedcluster"}]}
    assert identity.shortfall(no_subject, binding) == (
        "it does not bind ServiceAccount open-cluster-management/agent-registration-bootstrap"
    )
    assert identity.shortfall({"metadata": {}}, wanted("ServiceAccount")) is None
