"""What the integration tests and the bench use to drive the sandbox: a handle on it (kubectl,
helm, objects, audit log), hook runs, and the checks of a ready ITS. conftest.py holds only fixtures."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from tests.sandbox.kube import api_client
from tests.sandbox.kubeflex import FAULTS_NAME, FAULTS_NAMESPACE
from tests.sandbox.servers import BIN, REPO, kubeconfig

CHART = REPO / "chart"
HOOK = REPO / ".venv" / "bin" / "ks-its-hook"
MUTATING = {"create", "update", "patch", "delete", "deletecollection"}


@dataclass
class Sandbox:
    root: Path
    api: client.ApiClient
    helm_home: Path
    hosting_audit: Path = field(init=False)

    def __post_init__(self) -> None:
        self.hosting_audit = self.root / "apiservers" / "hosting" / "audit.log"
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def external_kubeconfig(self) -> Path:
        return self.root / "external.kubeconfig"

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PATH": f"{BIN}:{os.environ['PATH']}",
                "HELM_PLUGINS": str(REPO / ".cache" / "helm" / "plugins"),
                "HELM_CACHE_HOME": str(self.helm_home / "cache"), "HELM_CONFIG_HOME": str(self.helm_home / "config"),
                "HELM_DATA_HOME": str(self.helm_home / "data"), **extra}

    def run(self, *argv: str, check: bool = True, input: str | None = None, timeout: float = 600,
            **env: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(list(argv), env=self.env(**env), capture_output=True, text=True, input=input,
                                timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv[:4])}... exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.run(str(BIN / "kubectl"), *args, check=check, input=input)

    def helm(self, helm: str, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return self.run(str(BIN / helm), *args, check=check, timeout=timeout)

    # --- objects ---------------------------------------------------------------------------

    def controlplane(self, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self.custom.get_cluster_custom_object(
                "tenancy.kflex.kubestellar.org", "v1alpha1", "controlplanes", name)
            return result
        except client.exceptions.ApiException as err:
            if err.status == 404:
                return None
            raise

    def create_controlplane(self, name: str, cp_type: str, bootstrap: dict[str, str] | None = None) -> None:
        spec: dict[str, Any] = {"type": cp_type}
        if bootstrap:
            spec["bootstrapSecretRef"] = bootstrap
        manifest = {"apiVersion": "tenancy.kflex.kubestellar.org/v1alpha1", "kind": "ControlPlane",
                    "metadata": {"name": name}, "spec": spec}
        self.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def delete_controlplane(self, name: str) -> None:
        self.kubectl("delete", "controlplane", name, "--ignore-not-found", "--wait=false")

    def create_bootstrap_secret(self, name: str, namespace: str, key: str = "kubeconfig-incluster") -> None:
        self.kubectl("create", "namespace", namespace, check=False)
        self.kubectl("create", "secret", "generic", name, "-n", namespace,
                     f"--from-file={key}={self.external_kubeconfig}")

    def space_api(self, name: str) -> client.ApiClient:
        """A client for a space, from the in-cluster kubeconfig KubeFlex wrote."""
        cp = self.controlplane(name)
        assert cp is not None
        ref = cp["status"]["secretRef"]
        secret = self.core.read_namespaced_secret(ref["name"], ref["namespace"])
        return api_client(base64.b64decode(secret.data[ref["inClusterKey"]]).decode())

    def set_faults(self, key: str, **faults: Any) -> None:
        patch = {"data": {key: json.dumps(faults)}}
        self.core.patch_namespaced_config_map(FAULTS_NAME, FAULTS_NAMESPACE, patch,
                                              _content_type="application/merge-patch+json")

    def clear_faults(self, key: str) -> None:
        patch = {"data": {key: None}}
        self.core.patch_namespaced_config_map(FAULTS_NAME, FAULTS_NAMESPACE, patch,
                                              _content_type="application/merge-patch+json")

    # --- audit ------------------------------------------------------------------------------

    def audit(self, since: float, path: Path | None = None) -> list[dict[str, Any]]:
        """Audit events (ResponseComplete) from `path` (default: hosting) received at or after `since`."""
        events = []
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(since))
        with open(path or self.hosting_audit) as handle:
            for line in handle:
                event = json.loads(line)
                if event.get("stage") == "ResponseComplete" and event["requestReceivedTimestamp"][:19] >= stamp:
                    events.append(event)
        return events

    def space_audit_log(self, name: str) -> Path:
        return self.root / "apiservers" / f"space-{name}" / "audit.log"

    def token_kubeconfig(self, path: Path, namespace: str, service_account: str) -> Path:
        """A kubeconfig with a token of a ServiceAccount: requests are made, and audited, as that account."""
        request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[],
                                                                                     expiration_seconds=3600))
        token = self.core.create_namespaced_service_account_token(service_account, namespace, request).status.token
        admin = yaml.safe_load(self.kubeconfig.read_text())
        cluster = admin["clusters"][0]["cluster"]
        path.write_text(kubeconfig(cluster["server"], base64.b64decode(cluster["certificate-authority-data"]),
                                   service_account, token=token))
        path.chmod(0o600)
        return path


# The API server renews its own identity lease every few seconds: not a client's write.
SERVER_SELF = "system:apiserver"


def mutating(events: list[dict[str, Any]], user: str | None = None) -> list[str]:
    """'verb resource/name by user' for each write (of `user`, or of any client), for readable failures."""
    return [f"{e['verb']} {e.get('objectRef', {}).get('resource')}/{e.get('objectRef', {}).get('name')} "
            f"by {e['user']['username']}"
            for e in events if e["verb"] in MUTATING and e["user"]["username"] != SERVER_SELF
            and (user is None or e["user"]["username"] == user)]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


HOOK_RUNNER_USER = "system:serviceaccount:default:hook-runner"


def its_config(itses: list[dict[str, Any]], deadline: int = 120) -> str:
    normalized = []
    for its in itses:
        entry = {"name": its["name"], "type": its.get("type", "vcluster"),
                 "installClusteradm": its.get("install_clusteradm", True), "bootstrapSecret": None}
        if entry["type"] == "external":
            entry["bootstrapSecret"] = {"name": f"{its['name']}-bootstrap", "namespace": "default",
                                        "key": "kubeconfig-incluster", **its.get("bootstrapSecret", {})}
        normalized.append(entry)
    return json.dumps({"itses": normalized, "deadlineSeconds": deadline,
                       "ocm": {"imageRegistry": "", "bundleVersion": "default"}})


def hook_argv(tmp_path: Path, itses: list[dict[str, Any]], deadline: int = 120, command: str = "install") -> list[str]:
    config = tmp_path / f"its-{uuid.uuid4().hex[:6]}.json"
    config.write_text(its_config(itses, deadline))
    return [str(HOOK), command, "--config", str(config)]


def keep_hook_log(sandbox: Sandbox, output: str) -> None:
    """Every hook run's output is kept with the pod logs, so the secret scan reads it too."""
    (sandbox.root / "logs" / "pods").mkdir(parents=True, exist_ok=True)
    with open(sandbox.root / "logs" / "pods" / "direct-hook-runs.log", "a") as handle:
        handle.write(output)


def run_hook(sandbox: Sandbox, kubeconfig_path: Path, tmp_path: Path, itses: list[dict[str, Any]],
             deadline: int = 120, command: str = "install", **env: str) -> subprocess.CompletedProcess[str]:
    result = sandbox.run(*hook_argv(tmp_path, itses, deadline, command), check=False, timeout=deadline + 60,
                         KUBECONFIG=str(kubeconfig_path), TMPDIR=str(tmp_path), **env)
    keep_hook_log(sandbox, result.stdout + result.stderr)
    return result


REPORTS: list[str] = []


HUB_CRDS = ("managedclusters.cluster.open-cluster-management.io", "manifestworks.work.open-cluster-management.io",
            "placements.cluster.open-cluster-management.io",
            "managedclustersetbindings.cluster.open-cluster-management.io")


def create_its(sandbox: Sandbox, name: str, its_type: str) -> dict[str, Any]:
    if its_type == "external":
        sandbox.create_bootstrap_secret(f"{name}-bootstrap", "default")
        sandbox.create_controlplane(name, "external", {"name": f"{name}-bootstrap", "namespace": "default",
                                                      "inClusterKey": "kubeconfig-incluster"})
    else:
        sandbox.create_controlplane(name, its_type)
    return {"name": name, "type": its_type}


def assert_ready_its(sandbox: Sandbox, name: str) -> None:
    cp = sandbox.controlplane(name)
    assert cp is not None
    assert cp["metadata"]["labels"]["kflex.kubestellar.io/cptype"] == "its"
    assert cp["metadata"]["annotations"]["its.kubestellar.io/status"] == "Ready"
    space = sandbox.space_api(name)
    cm = client.CustomObjectsApi(space).get_cluster_custom_object(
        "operator.open-cluster-management.io", "v1", "clustermanagers", "cluster-manager")
    assert {c["type"]: c["status"] for c in cm["status"]["conditions"]}["Applied"] == "True"
    extensions = client.ApiextensionsV1Api(space)
    for crd in HUB_CRDS:
        conditions = extensions.read_custom_resource_definition(crd).status.conditions
        assert any(c.type == "Established" and c.status == "True" for c in conditions), crd
    assert client.CoreV1Api(space).read_namespace("customization-properties").status.phase == "Active"


def install(sandbox: Sandbox, helm: str, release: str, namespace: str, itses: list[dict[str, Any]],
            *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sandbox.helm(helm, "upgrade", "--install", release, str(CHART), "--namespace", namespace,
                        "--create-namespace", "--wait", "--timeout", "300s",
                        "--set-json", f"ITSes={json.dumps(itses)}", *extra, check=check)


def three_types(sandbox: Sandbox, namespace: str, prefix: str) -> list[dict[str, Any]]:
    itses = [{"name": unique(f"{prefix}-vc")}, {"name": unique(f"{prefix}-host"), "type": "host"},
             {"name": unique(f"{prefix}-ext"), "type": "external"}]
    sandbox.create_bootstrap_secret(f"{itses[2]['name']}-bootstrap", namespace)  # as a user would, first
    return itses


def hook_user(namespace: str, release: str) -> str:
    return f"system:serviceaccount:{namespace}:{release}-hook"
