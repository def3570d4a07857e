"""The chart and the hook agree on KubeFlex's facts (hooks/src/ks_its_hooks/kubeflex.py): the RBAC
grants exactly the Secrets the hook reads, on the ControlPlane API the hook uses, and NOTES tells
users the Secret keys KubeFlex writes. Rendered with helm."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
import yaml
from ks_its_hooks import kubeflex

from tests.harness import CHART, Sandbox
from tests.sandbox.servers import BIN

ITSES = '[{"name":"its1"},{"name":"its2","type":"host"},{"name":"its3","type":"external"}]'


def render(*args: str) -> str:
    return subprocess.run([str(BIN / "helm"), "template", "ks-its", str(CHART), "-n", "kubeflex-system",
                           "--set-json", f"ITSes={ITSES}", *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def documents() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(render()) if doc]


def test_the_credentials_clusterrole_names_exactly_the_secrets_the_hook_reads(documents: list[dict[str, Any]]) -> None:
    [role] = [doc for doc in documents
              if doc["kind"] == "ClusterRole" and doc["metadata"]["name"].endswith("-space-credentials")]
    [rule] = role["rules"]
    assert (rule["apiGroups"], rule["resources"]) == ([""], ["secrets"])
    assert set(rule["resourceNames"]) == set(kubeflex.CREDENTIAL_SECRETS)


@pytest.mark.parametrize("component", ["hook", "test"])
def test_rbac_grants_the_controlplane_api_and_the_credentials_in_each_space_namespace_only(
        documents: list[dict[str, Any]], component: str) -> None:
    role = next(doc for doc in documents if doc["kind"] == "ClusterRole"
                and doc["metadata"]["labels"]["app.kubernetes.io/component"] == component
                and not doc["metadata"]["name"].endswith("-space-credentials"))
    api = (kubeflex.CP_GROUP, kubeflex.CP_PLURAL)
    named = [rule for rule in role["rules"] if (rule["apiGroups"][0], rule["resources"][0]) == api and "resourceNames" in rule]
    assert [set(rule["resourceNames"]) for rule in named] == [{"its1", "its2", "its3"}]
    assert not [rule for rule in role["rules"] if rule["resources"] == ["secrets"]]
    bindings = {doc["metadata"]["namespace"] for doc in documents if doc["kind"] == "RoleBinding"
                and doc["metadata"]["labels"]["app.kubernetes.io/component"] == component
                and doc["roleRef"]["name"].endswith("-space-credentials")}
    assert bindings == {kubeflex.system_namespace(name) for name in ("its1", "its2", "its3")}


def test_controlplanes_use_the_api_version_the_hook_reads(documents: list[dict[str, Any]]) -> None:
    controlplanes = [doc for doc in documents if doc["kind"] == "ControlPlane"]
    assert {doc["apiVersion"] for doc in controlplanes} == {f"{kubeflex.CP_GROUP}/{kubeflex.CP_VERSION}"}
    assert {doc["metadata"]["name"]: doc["spec"]["type"] for doc in controlplanes} == {
        "its1": "vcluster", "its2": "host", "its3": "external"}


def test_notes_give_each_type_the_secret_key_kubeflex_writes(sandbox: Sandbox) -> None:
    # helm renders NOTES only on install; a client-side dry run still asks the cluster for its version.
    installed = sandbox.helm("helm3", "install", "ks-its", str(CHART), "-n", "kubeflex-system", "--dry-run=client",
                             "--set-json", f"ITSes={ITSES}").stdout
    notes = installed.split("NOTES:", 1)[1]
    lines = notes.splitlines()
    for name, space_type in (("its1", "vcluster"), ("its2", "host"), ("its3", "external")):
        start = lines.index(next(line for line in lines if line.startswith(f"  {name} ({space_type}):")))
        block = "\n".join(lines[start:start + 3])
        expected = kubeflex.USER_CREDENTIALS[space_type]
        found = re.search(r"kubectl get secret (\S+) -n (\S+) -o jsonpath='\{\.data\.([^}]+)\}'", block)
        if expected is None:
            assert found is None, block
        else:
            assert found, block
            assert (found.group(1), found.group(3)) == expected
            assert found.group(2) == kubeflex.system_namespace(name)
    assert "-l 'app.kubernetes.io/instance=ks-its,app.kubernetes.io/component in (preflight,hook)' --prefix --tail=-1" in notes
