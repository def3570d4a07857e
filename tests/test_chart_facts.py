"""The chart and the hook agree on what only one of them can say: the ControlPlane API the hook
reads is the one the chart writes; the OCM bundles the schema takes are those the hook image's
clusteradm has. (What depends on an ITS's type, the chart tells the hook in its.json;
that KubeFlex writes the credentials where its.json says: tests/test_sandbox.py.)"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml
from ks_its_hooks import kube, ocm_hub

from tests.harness import CHART
from tests.sandbox.servers import BIN, module_dir, pinned

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


def clusteradm_init_says(bundle: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """clusteradm init's answer to a bundle version, which it checks before it reaches any cluster."""
    nowhere = tmp_path / "kubeconfig"
    nowhere.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {token: t}}]\n"
    )
    argv = [str(BIN / "clusteradm"), "init", "--dry-run", "--bundle-version", bundle, "--kubeconfig", str(nowhere)]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)


def test_the_schema_takes_exactly_the_bundles_of_the_hook_images_clusteradm_but_latest(tmp_path: Path) -> None:
    source = module_dir("open-cluster-management.io/clusteradm", pinned("CLUSTERADM_VERSION")) / "pkg/version/version.go"
    bundles = set(re.findall(r'versionBundleList\["([^"]+)"\]\s*=', source.read_text())) - {"latest"}
    schema = json.loads((CHART / "values.schema.json").read_text())
    accepted = set(schema["$defs"]["helm-values.ocm.bundleVersion"]["enum"])
    assert accepted == bundles | {f"v{b}" for b in bundles if b != "default"}
    for bundle in sorted(accepted):
        assert ocm_hub.UNKNOWN_BUNDLE not in clusteradm_init_says(bundle, tmp_path).stderr, bundle
    # What the hook takes for a bundle clusteradm does not have is what clusteradm says.
    refused = clusteradm_init_says("v0.9.0", tmp_path)
    assert refused.returncode != 0 and ocm_hub.UNKNOWN_BUNDLE in refused.stderr
