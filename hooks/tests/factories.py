"""What the hook's unit tests build their input from: an ITS as its.json describes it."""

from __future__ import annotations

from ks_its_hooks.spec import ItsSpec, SecretRef, SpaceRef, SpaceType

# The Secret and key of each type's in-cluster kubeconfig, as the chart renders them into its.json.
CREDENTIALS: dict[SpaceType, tuple[str, str]] = {
    "vcluster": ("vc-vcluster", "config-incluster"),
    "host": ("admin-kubeconfig", "kubeconfig-incluster"),
    "external": ("admin-kubeconfig", "kubeconfig-incluster"),
}


def its(
    name: str = "its1",
    space_type: SpaceType = "vcluster",
    install_clusteradm: bool = True,
    bootstrap: SecretRef | None = None,
    install_status_addon: bool = False,
) -> ItsSpec:
    secret, key = CREDENTIALS[space_type]
    return ItsSpec(
        name, space_type, install_clusteradm, bootstrap, install_status_addon, SpaceRef(f"{name}-system", secret, key)
    )


def its_json_item(name: str, space_type: SpaceType = "vcluster", **fields: object) -> dict[str, object]:
    """An item of its.json's `itses` as the chart renders it."""
    secret, key = CREDENTIALS[space_type]
    return {
        "name": name,
        "type": space_type,
        "installClusteradm": True,
        "bootstrapSecret": None,
        "installStatusAddon": False,
        "space": {"namespace": f"{name}-system", "credentials": {"secret": secret, "key": key}},
        "hub": {"featureGates": {}, "resources": {"qosClass": "Default", "requests": {}, "limits": {}}},
        **fields,
    }


def its_json(*items: dict[str, object], **fields: object) -> dict[str, object]:
    """its.json as the chart renders it, with these items."""
    return {
        "apiVersion": "its.kubestellar.io/v1alpha1",
        "kind": "HookConfig",
        "itses": list(items),
        "deadlineSeconds": 600,
        "ocm": {"imageRegistry": "", "bundleVersion": "default"},
        "statusAddon": {
            "chart": "oci://r/c",
            "version": "v1",
            "plainHTTP": False,
            "caBundle": "",
            "pullSecret": None,
            "values": {},
        },
        **fields,
    }
