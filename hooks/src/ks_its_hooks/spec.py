"""The hook's input: its.json, which the chart renders (the `its.hookConfig` template) and this module
reads, field for field: the contract between them. What depends on an ITS's type (its space's
namespace, and the Secret and key where KubeFlex writes the space's kubeconfig) comes from the chart,
which is the one place of those facts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, cast

SpaceType = Literal["vcluster", "host", "external"]
SPACE_TYPES: tuple[SpaceType, ...] = ("vcluster", "host", "external")
API_VERSION, KIND = "its.kubestellar.io/v1alpha1", "HookConfig"


class ConfigError(ValueError):
    """The rendered configuration is not what the chart produces."""


@dataclass(frozen=True)
class SecretRef:
    name: str
    namespace: str
    key: str


@dataclass(frozen=True)
class SpaceRef:
    """Where the ITS's space is in the hosting cluster: KubeFlex's namespace for it, and the Secret and
    key of the kubeconfig for use inside the hosting cluster (unless the ControlPlane's status names
    others)."""

    namespace: str
    secret: str
    key: str


@dataclass(frozen=True)
class HubOptions:
    """An ITS's `hub`: what `clusteradm init` is given besides ocm's settings when it makes the hub
    (feature gates; the QoS class, requests and limits of the hub's containers), sorted by name."""

    feature_gates: tuple[tuple[str, bool], ...] = ()
    qos_class: str = "Default"
    requests: tuple[tuple[str, str], ...] = ()
    limits: tuple[tuple[str, str], ...] = ()

    def gate(self, name: str) -> bool:
        return dict(self.feature_gates).get(name, False)


@dataclass(frozen=True)
class ItsSpec:
    name: str
    type: SpaceType
    install_clusteradm: bool
    bootstrap_secret: SecretRef | None
    install_status_addon: bool
    space: SpaceRef
    hub: HubOptions = HubOptions()


@dataclass(frozen=True)
class OcmSettings:
    """its.json `ocm`: what `clusteradm init` is given."""

    image_registry: str
    bundle_version: str


@dataclass(frozen=True)
class StatusAddonSettings:
    """its.json `statusAddon`: the add-on chart, how to reach its registry, and its values."""

    chart: str
    version: str
    plain_http: bool
    ca_bundle: str
    pull_secret: SecretRef | None
    values: dict[str, Any]


@dataclass(frozen=True)
class HookConfig:
    """its.json, field for field."""

    itses: tuple[ItsSpec, ...]
    deadline_seconds: float
    ocm: OcmSettings
    status_addon: StatusAddonSettings


def _field(obj: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in obj:
        raise ConfigError(f"{where}.{key} is missing")
    value = obj[key]
    # bool is an int subclass: never accept one for the other.
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ConfigError(f"{where}.{key} must be a {kind.__name__}, got {type(value).__name__}")
    return value


def _secret_ref(raw: Any, where: str) -> SecretRef | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be an object")
    return SecretRef(
        name=_field(raw, "name", str, where), namespace=_field(raw, "namespace", str, where), key=_field(raw, "key", str, where)
    )


def _mapping(obj: dict[str, Any], key: str, kind: type, where: str) -> tuple[tuple[str, Any], ...]:
    """A JSON object of `kind` values, as sorted pairs."""
    raw = _field(obj, key, dict, where)
    for name, value in raw.items():
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise ConfigError(f"{where}.{key}.{name} must be a {kind.__name__}, got {type(value).__name__}")
    return tuple(sorted(raw.items()))


def _hub(obj: dict[str, Any], where: str) -> HubOptions:
    hub = _field(obj, "hub", dict, where)
    resources = _field(hub, "resources", dict, f"{where}.hub")
    return HubOptions(
        feature_gates=_mapping(hub, "featureGates", bool, f"{where}.hub"),
        qos_class=_field(resources, "qosClass", str, f"{where}.hub.resources"),
        requests=_mapping(resources, "requests", str, f"{where}.hub.resources"),
        limits=_mapping(resources, "limits", str, f"{where}.hub.resources"),
    )


def _its(obj: Any, where: str) -> ItsSpec:
    if not isinstance(obj, dict):
        raise ConfigError(f"{where} must be an object")
    space_type = _field(obj, "type", str, where)
    if space_type not in SPACE_TYPES:
        raise ConfigError(f"{where}.type must be one of {', '.join(SPACE_TYPES)}, got {space_type!r}")
    bootstrap = _secret_ref(obj.get("bootstrapSecret"), f"{where}.bootstrapSecret")
    if (space_type == "external") != (bootstrap is not None):
        raise ConfigError(f"{where}.bootstrapSecret is required for type external and only for it")
    space = _field(obj, "space", dict, where)
    credentials = _field(space, "credentials", dict, f"{where}.space")
    return ItsSpec(
        name=_field(obj, "name", str, where),
        type=cast(SpaceType, space_type),
        install_clusteradm=_field(obj, "installClusteradm", bool, where),
        bootstrap_secret=bootstrap,
        install_status_addon=_field(obj, "installStatusAddon", bool, where),
        space=SpaceRef(
            namespace=_field(space, "namespace", str, f"{where}.space"),
            secret=_field(credentials, "secret", str, f"{where}.space.credentials"),
            key=_field(credentials, "key", str, f"{where}.space.credentials"),
        ),
        hub=_hub(obj, where),
    )


def parse_config(text: str) -> HookConfig:
    """Parse its.json as rendered by the chart (all defaults already applied there)."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"its.json is not JSON: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError("its.json must be an object")
    found = (raw.get("apiVersion"), raw.get("kind"))
    if found != (API_VERSION, KIND):
        raise ConfigError(
            f"its.json is {found[0]}/{found[1]}, this hook reads {API_VERSION}/{KIND}: "
            "the chart and the hook image are of different versions"
        )
    items = _field(raw, "itses", list, "its.json")
    itses = tuple(_its(item, f"itses[{i}]") for i, item in enumerate(items))
    names = [its.name for its in itses]
    if len(set(names)) != len(names):
        raise ConfigError("itses has duplicate names")
    ocm = _field(raw, "ocm", dict, "its.json")
    addon = _field(raw, "statusAddon", dict, "its.json")
    where = "its.json.statusAddon"
    deadline = _field(raw, "deadlineSeconds", int, "its.json")
    if deadline <= 0:
        raise ConfigError("its.json.deadlineSeconds must be positive")
    return HookConfig(
        itses=itses,
        deadline_seconds=float(deadline),
        ocm=OcmSettings(
            image_registry=_field(ocm, "imageRegistry", str, "its.json.ocm"),
            bundle_version=_field(ocm, "bundleVersion", str, "its.json.ocm"),
        ),
        status_addon=StatusAddonSettings(
            chart=_field(addon, "chart", str, where),
            version=_field(addon, "version", str, where),
            plain_http=_field(addon, "plainHTTP", bool, where),
            ca_bundle=_field(addon, "caBundle", str, where),
            pull_secret=_secret_ref(addon.get("pullSecret"), f"{where}.pullSecret"),
            values=_field(addon, "values", dict, where),
        ),
    )


def shard(itses: tuple[ItsSpec, ...], index: int, count: int) -> tuple[ItsSpec, ...]:
    """The ITSes that pod `index` of an Indexed Job with `count` completions handles."""
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"shard index {index} is outside 0..{count - 1}")
    return itses[index::count]
