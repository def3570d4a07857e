"""Step `customization-properties`: the namespace it creates, as rendered."""

from __future__ import annotations

from ks_its_hooks import FIELD_MANAGER, properties
from ks_its_hooks.manifests import render


def test_the_namespace_is_labelled_as_kubestellar_s_and_the_hook_s() -> None:
    manifest = render("customization-properties.yaml.j2", name=properties.NAMESPACE, manager=FIELD_MANAGER)
    assert manifest == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": "customization-properties",
            "labels": {"app.kubernetes.io/part-of": "kubestellar", "app.kubernetes.io/managed-by": "ks-its-hook"},
        },
    }
