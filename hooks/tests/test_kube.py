"""Requests for built-in kinds: their paths. (That a hook run imports none of the client's typed API
classes: tests/test_node.py, in the image.)"""

from __future__ import annotations

import pytest
from ks_its_hooks import kube


@pytest.mark.parametrize(
    ("kind", "namespace", "name", "path"),
    [
        (kube.SECRETS, "ns", "s", "/api/v1/namespaces/ns/secrets/s"),
        (kube.SECRETS, "ns", None, "/api/v1/namespaces/ns/secrets"),
        (kube.NAMESPACES, None, "customization-properties", "/api/v1/namespaces/customization-properties"),
        (
            kube.DEPLOYMENTS,
            "open-cluster-management-hub",
            None,
            "/apis/apps/v1/namespaces/open-cluster-management-hub/deployments",
        ),
        (kube.CRDS, None, None, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"),
        (kube.JOBS, "ns", "j", "/apis/batch/v1/namespaces/ns/jobs/j"),
    ],
)
def test_paths(kind: kube.Kind, namespace: str | None, name: str | None, path: str) -> None:
    assert kind.path(namespace, name) == path
