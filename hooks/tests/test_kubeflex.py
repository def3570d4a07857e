"""KubeFlex's facts: where each type of space keeps its in-cluster kubeconfig."""

from __future__ import annotations

import pytest
from ks_its_hooks import kubeflex
from ks_its_hooks.kubeflex import CredentialsRef


@pytest.mark.parametrize(("space_type", "expected"), [
    ("vcluster", CredentialsRef("vc-vcluster", "its1-system", "config-incluster")),
    ("host", CredentialsRef("admin-kubeconfig", "its1-system", "kubeconfig-incluster")),
    ("external", CredentialsRef("admin-kubeconfig", "its1-system", "kubeconfig-incluster")),
])
def test_each_type_has_its_default_in_cluster_credentials(space_type: kubeflex.SpaceType,
                                                          expected: CredentialsRef) -> None:
    assert kubeflex.in_cluster_credentials("its1", space_type, {}) == expected


def test_status_secret_ref_wins_and_its_in_cluster_key_is_the_one_used() -> None:
    # status.secretRef.key says "kubeconfig" for host, which is absent there: inClusterKey wins.
    ref = {"name": "admin-kubeconfig", "namespace": "elsewhere", "key": "kubeconfig",
           "inClusterKey": "kubeconfig-incluster"}
    assert kubeflex.in_cluster_credentials("its2", "host", ref) == CredentialsRef(
        "admin-kubeconfig", "elsewhere", "kubeconfig-incluster")


def test_the_secrets_the_hook_may_read_are_the_types_secrets() -> None:
    assert kubeflex.CREDENTIAL_SECRETS == ("admin-kubeconfig", "vc-vcluster")
    assert kubeflex.system_namespace("its1") == "its1-system"
