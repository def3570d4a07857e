"""The chart and the hook agree on what only one of them can say: the ControlPlane API the hook
reads is the one the chart writes. (What depends on an ITS's type, the chart tells the hook in its.json;
that KubeFlex writes the credentials where its.json says: tests/test_sandbox.py.)"""

from __future__ import annotations

import subprocess

import yaml
from ks_its_hooks import kube

from tests.harness import CHART
from tests.sandbox.servers import BIN

ITSES = '[{"name":"its1"},{"name":"its2","type":"host"},{"name":"its3","type":"external"}]'


def test_controlplanes_use_the_api_version_the_hook_reads() -> None:
    rendered = subprocess.run(
        [str(BIN / "helm"), "template", "ks-its", str(CHART), "-n", "kubeflex-system", "--set-json", f"ITSes={ITSES}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    controlplanes = [doc for doc in yaml.safe_load_all(rendered) if doc and doc["kind"] == kube.CONTROLPLANES.kind]
    assert {doc["apiVersion"] for doc in controlplanes} == {kube.CONTROLPLANES.group_version}
    assert {doc["metadata"]["name"]: doc["spec"]["type"] for doc in controlplanes} == {
        "its1": "vcluster",
        "its2": "host",
        "its3": "external",
    }
