from __future__ import annotations

import json
import re

import pytest
from factories import its, its_json, its_json_item
from ks_its_hooks.spec import ConfigError, OcmSettings, SecretRef, SpaceRef, StatusAddonSettings, parse_config, shard


def config(**overrides: object) -> str:
    return json.dumps(
        its_json(
            its_json_item("its1", installStatusAddon=True),
            its_json_item(
                "its3", "external", installClusteradm=False, bootstrapSecret={"name": "b", "namespace": "ns", "key": "k"}
            ),
            **{
                "deadlineSeconds": 60,
                "statusAddon": {
                    "chart": "oci://r/c",
                    "version": "v1",
                    "plainHTTP": True,
                    "caBundle": "",
                    "pullSecret": {"name": "pull", "namespace": "rel", "key": ".dockerconfigjson"},
                    "values": {"agent": {"v": 2}},
                },
                **overrides,
            },
        )
    )


def test_parses_what_the_chart_renders() -> None:
    parsed = parse_config(config())
    assert parsed.deadline_seconds == 60.0
    assert parsed.itses == (
        its("its1", install_status_addon=True),
        its("its3", "external", install_clusteradm=False, bootstrap=SecretRef("b", "ns", "k")),
    )
    assert parsed.itses[0].space == SpaceRef("its1-system", "vc-vcluster", "config-incluster")
    assert parsed.ocm == OcmSettings(image_registry="", bundle_version="default")
    assert parsed.status_addon == StatusAddonSettings(
        chart="oci://r/c",
        version="v1",
        plain_http=True,
        ca_bundle="",
        pull_secret=SecretRef("pull", "rel", ".dockerconfigjson"),
        values={"agent": {"v": 2}},
    )


def test_refuses_its_json_of_another_version_naming_both() -> None:
    with pytest.raises(
        ConfigError,
        match=re.escape("its.json is its.kubestellar.io/v2/HookConfig, this hook reads its.kubestellar.io/v1alpha1/HookConfig"),
    ):
        parse_config(config(apiVersion="its.kubestellar.io/v2"))
    with pytest.raises(ConfigError, match=re.escape("its.json is None/None")):
        parse_config(json.dumps({k: v for k, v in json.loads(config()).items() if k not in ("apiVersion", "kind")}))


def item(**fields: object) -> dict[str, object]:
    return its_json_item("a", "host", **fields)


@pytest.mark.parametrize(
    ("itses", "message"),
    [
        ([item(type="k3s")], "itses[0].type must be one of"),
        ([item(installClusteradm="false")], "itses[0].installClusteradm must be a bool, got str"),
        ([item(installStatusAddon=None)], "itses[0].installStatusAddon must be a bool, got NoneType"),
        ([item(type="external")], "bootstrapSecret is required for type external"),
        ([{k: v for k, v in item().items() if k != "name"}], "itses[0].name is missing"),
        ([item(space={"namespace": "a-system"})], "itses[0].space.credentials is missing"),
        ([item()] * 2, "duplicate names"),
    ],
)
def test_rejects_what_the_chart_never_renders(itses: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(config(itses=itses))


def test_ocm_settings_are_checked_where_they_are_nested() -> None:
    with pytest.raises(ConfigError, match=re.escape("its.json.ocm.imageRegistry must be a str, got int")):
        parse_config(config(ocm={"imageRegistry": 5, "bundleVersion": "default"}))
    with pytest.raises(ConfigError, match=re.escape("its.json.ocm.bundleVersion is missing")):
        parse_config(config(ocm={"imageRegistry": ""}))


def test_rejects_a_non_positive_deadline_and_bad_json() -> None:
    with pytest.raises(ConfigError, match="deadlineSeconds must be positive"):
        parse_config(config(deadlineSeconds=0))
    with pytest.raises(ConfigError, match="not JSON"):
        parse_config("{")


def test_shards_cover_every_its_once() -> None:
    itses = tuple(its(f"i{n}") for n in range(7))
    shards = [shard(itses, index, 3) for index in range(3)]
    assert [its.name for its in shards[0]] == ["i0", "i3", "i6"]
    assert sorted(its.name for part in shards for its in part) == sorted(its.name for its in itses)
    with pytest.raises(ConfigError):
        shard(itses, 3, 3)
