"""Where the in-cluster kubeconfig is: KubeFlex's status, else what the chart says of the ITS's type."""

from __future__ import annotations

from factories import its
from ks_its_hooks import kubeflex
from ks_its_hooks.spec import SpaceRef


def test_without_a_status_secret_ref_the_chart_s_facts_hold() -> None:
    assert kubeflex.in_cluster_credentials(its("its1"), {}) == SpaceRef("its1-system", "vc-vcluster", "config-incluster")


def test_status_secret_ref_wins_and_its_in_cluster_key_is_the_one_used() -> None:
    # status.secretRef.key says "kubeconfig" for host, which is absent there: inClusterKey wins.
    ref = {"name": "admin-kubeconfig", "namespace": "elsewhere", "key": "kubeconfig", "inClusterKey": "kubeconfig-incluster"}
    assert kubeflex.in_cluster_credentials(its("its2", "host"), ref) == SpaceRef(
        "elsewhere", "admin-kubeconfig", "kubeconfig-incluster"
    )
