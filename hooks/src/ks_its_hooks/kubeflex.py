"""What KubeFlex (v0.9.3) and KubeStellar define that the hook relies on, besides what the chart
tells it per ITS type (spec.SpaceRef)."""

from __future__ import annotations

from .spec import ItsSpec, SpaceRef

# How KubeStellar consumers find ITSes; upstream sets it only once the ITS is ready.
ITS_LABEL = "kflex.kubestellar.io/cptype"
ITS_LABEL_VALUE = "its"


def in_cluster_credentials(its: ItsSpec, secret_ref: dict[str, str]) -> SpaceRef:
    """Where the in-cluster kubeconfig is: status.secretRef where KubeFlex filled it in, else where the
    chart says KubeFlex writes it for the ITS's type. status.secretRef.key names `kubeconfig` for host
    and external although only the in-cluster key exists there, so inClusterKey is the one to use."""
    return SpaceRef(
        namespace=secret_ref.get("namespace") or its.space.namespace,
        secret=secret_ref.get("name") or its.space.secret,
        key=secret_ref.get("inClusterKey") or its.space.key,
    )
