"""Step `status-addon`: when the release is up to date, the helm command, and the registry
credentials it gives helm. (What the chart's registry answers: test_registry.py.)"""

from __future__ import annotations

import base64
import json

import pytest
from ks_its_hooks import status_addon
from ks_its_hooks.errors import PermanentError
from ks_its_hooks.spec import StatusAddonSettings
from ks_its_hooks.status_addon import Release

SETTINGS = StatusAddonSettings(
    chart="oci://ghcr.io/kubestellar/ocm-status-addon-chart",
    version="v0.2.0-rc17",
    plain_http=False,
    ca_bundle="",
    pull_secret=None,
    values={"controller": {"verbosity": 2}, "agent": {"hub_qps": 5}},
)


def deployed(**changes: object) -> Release:
    fields: dict[str, object] = {
        "status": "deployed",
        "chart": "ocm-status-addon-chart-v0.2.0-rc17",
        "revision": 1,
        "values": {"controller": {"verbosity": 2}, "agent": {"hub_qps": 5}},
        **changes,
    }
    return Release(**fields)  # type: ignore[arg-type]


def test_a_release_is_up_to_date_only_when_deployed_with_the_same_chart_version_and_values() -> None:
    assert status_addon.up_to_date(deployed(), SETTINGS) is None
    assert status_addon.up_to_date(None, SETTINGS) == "not installed"
    assert status_addon.up_to_date(deployed(status="failed"), SETTINGS) == "release status is failed"
    assert status_addon.up_to_date(deployed(chart="ocm-status-addon-chart-v0.2.0-rc16"), SETTINGS) == (
        "release is ocm-status-addon-chart-v0.2.0-rc16, not ocm-status-addon-chart-v0.2.0-rc17"
    )
    assert status_addon.up_to_date(deployed(values={"controller": {"verbosity": 4}}), SETTINGS) == ("release values differ")


def test_the_upgrade_command_passes_registry_options_only_when_set() -> None:
    files = {"kubeconfig": "/p/k", "values.json": "/p/v"}
    assert status_addon.upgrade_command(SETTINGS, files) == [
        "helm",
        "upgrade",
        "--install",
        "status-addon",
        SETTINGS.chart,
        "--version",
        "v0.2.0-rc17",
        "--namespace",
        "open-cluster-management",
        "--create-namespace",
        "--kubeconfig",
        "/p/k",
        "--values",
        "/p/v",
    ]
    private = StatusAddonSettings(
        chart="oci://mirror:5000/charts/ocm-status-addon-chart",
        version="v1",
        plain_http=True,
        ca_bundle="PEM",
        pull_secret=None,
        values={},
    )
    command = status_addon.upgrade_command(private, {**files, "ca.crt": "/p/ca", "registry.json": "/p/r"})
    assert command[-5:] == ["--plain-http", "--ca-file", "/p/ca", "--registry-config", "/p/r"]
    assert status_addon.chart_name(private) == "ocm-status-addon-chart"


def test_registry_credentials_come_from_the_pull_secret_key() -> None:
    config = json.dumps({"auths": {"mirror:5000": {"auth": "dTpw"}}})
    secret = {"data": {".dockerconfigjson": base64.b64encode(config.encode()).decode()}}
    assert status_addon.registry_config(secret, ".dockerconfigjson") == config
    assert status_addon.registry_config(None, ".dockerconfigjson") is None
    with pytest.raises(PermanentError, match=r"has no key \.dockerconfigjson"):
        status_addon.registry_config({"data": {}}, ".dockerconfigjson")


def test_the_addon_counts_as_present_only_with_its_clustermanagementaddon() -> None:
    assert status_addon.addon_pending({"addon-status": {}}) is None
    assert status_addon.addon_pending({}) == "ClusterManagementAddOn addon-status does not exist"
