"""What KubeFlex (v0.9.3) and KubeStellar define, in one place: the chart's RBAC and NOTES are
checked against these values by a test (tests/test_chart_facts.py), not kept equal by hand."""

from __future__ import annotations

from dataclasses import dataclass

from .spec import SpaceType

CP_GROUP = "tenancy.kflex.kubestellar.org"
CP_VERSION = "v1alpha1"
CP_PLURAL = "controlplanes"

# How KubeStellar consumers find ITSes; upstream sets it only once the ITS is ready.
ITS_LABEL = "kflex.kubestellar.io/cptype"
ITS_LABEL_VALUE = "its"


@dataclass(frozen=True)
class CredentialsRef:
    """A Secret key holding a kubeconfig of a space."""

    secret: str
    namespace: str
    key: str


# Per type: the Secret KubeFlex writes in <name>-system and its key for use inside the hosting
# cluster. A vcluster's Secret also has `config`, for use from outside (an ingress host).
IN_CLUSTER_CREDENTIALS: dict[SpaceType, tuple[str, str]] = {
    "vcluster": ("vc-vcluster", "config-incluster"),
    "host": ("admin-kubeconfig", "kubeconfig-incluster"),
    "external": ("admin-kubeconfig", "kubeconfig-incluster"),
}
CREDENTIAL_SECRETS = tuple(sorted({secret for secret, _ in IN_CLUSTER_CREDENTIALS.values()}))
# Per type: the Secret key a user reads for kubectl from outside the hosting cluster, where KubeFlex
# writes one: a host ITS is the hosting cluster itself, and an external ITS is a cluster the user
# already has a kubeconfig of (KubeFlex's is for use inside the hosting cluster).
USER_CREDENTIALS: dict[SpaceType, tuple[str, str] | None] = {
    "vcluster": ("vc-vcluster", "config"),
    "host": None,
    "external": None,
}


def system_namespace(its_name: str) -> str:
    """The namespace KubeFlex creates for a ControlPlane's space in the hosting cluster."""
    return f"{its_name}-system"


def in_cluster_credentials(its_name: str, space_type: SpaceType, secret_ref: dict[str, str]) -> CredentialsRef:
    """Where the in-cluster kubeconfig is: status.secretRef where KubeFlex filled it in, else the
    type's default. status.secretRef.key names `kubeconfig` for host and external although only the
    in-cluster key exists there, so inClusterKey is the one to use."""
    secret, key = IN_CLUSTER_CREDENTIALS[space_type]
    return CredentialsRef(
        secret=secret_ref.get("name") or secret,
        namespace=secret_ref.get("namespace") or system_namespace(its_name),
        key=secret_ref.get("inClusterKey") or key,
    )
