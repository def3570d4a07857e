from __future__ import annotations

import json
import re

import pytest
from ks_its_hooks.spec import ConfigError, ItsSpec, OcmSettings, SecretRef, StatusAddonSettings, parse_config, shard


def config(**overrides: object) -> str:
    base: dict[str, object] = {
        "deadlineSeconds": 60,
        "ocm": {"imageRegistry": "", "bundleVersion": "default"},
        "statusAddon": {"chart": "oci://r/c", "version": "v1", "plainHTTP": True, "caBundle": "",
                        "pullSecret": {"name": "pull", "namespace": "rel", "key": ".dockerconfigjson"},
                        "values": {"agent": {"v": 2}}},
        "itses": [
            {"name": "its1", "type": "vcluster", "installClusteradm": True, "bootstrapSecret": None,
             "installStatusAddon": True},
            {"name": "its3", "type": "external", "installClusteradm": False,
             "bootstrapSecret": {"name": "b", "namespace": "ns", "key": "k"}, "installStatusAddon": False},
        ],
    }
    base.update(overrides)
    return json.dumps(base)


def test_parses_what_the_chart_renders() -> None:
    parsed = parse_config(config())
    assert parsed.deadline_seconds == 60.0
    assert parsed.itses == (
        ItsSpec("its1", "vcluster", True, None, True),
        ItsSpec("its3", "external", False, SecretRef("b", "ns", "k"), False),
    )
    assert parsed.ocm == OcmSettings(image_registry="", bundle_version="default")
    assert parsed.status_addon == StatusAddonSettings(
        chart="oci://r/c", version="v1", plain_http=True, ca_bundle="",
        pull_secret=SecretRef("pull", "rel", ".dockerconfigjson"), values={"agent": {"v": 2}})


def its(**fields: object) -> dict[str, object]:
    return {"name": "a", "type": "host", "installClusteradm": True, "bootstrapSecret": None,
            "installStatusAddon": False, **fields}


@pytest.mark.parametrize(("itses", "message"), [
    ([its(type="k3s")], "itses[0].type must be one of"),
    ([its(installClusteradm="false")], "itses[0].installClusteradm must be a bool, got str"),
    ([its(installStatusAddon=None)], "itses[0].installStatusAddon must be a bool, got NoneType"),
    ([its(type="external")], "bootstrapSecret is required for type external"),
    ([{k: v for k, v in its().items() if k != "name"}], "itses[0].name is missing"),
    ([its()] * 2, "duplicate names"),
])
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
    itses = tuple(ItsSpec(f"i{n}", "vcluster", True, None, False) for n in range(7))
    shards = [shard(itses, index, 3) for index in range(3)]
    assert [its.name for its in shards[0]] == ["i0", "i3", "i6"]
    assert sorted(its.name for part in shards for its in part) == sorted(its.name for its in itses)
    with pytest.raises(ConfigError):
        shard(itses, 3, 3)
