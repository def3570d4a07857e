"""What the integration tests and the bench use to drive the sandbox: a handle on it (kubectl,
helm, objects, audit log), hook runs, and the checks of a ready ITS. conftest.py holds only fixtures."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from tests.sandbox.clusters import CLUSTERS_NAME, CLUSTERS_NAMESPACE, apiserver_name, kubeconfig_paths
from tests.sandbox.host import Host
from tests.sandbox.kube import api_client, as_object, manifest, or_none, secret_text
from tests.sandbox.node import cri_log
from tests.sandbox.servers import BIN, REPO, kubeconfig, yaml_value
from tests.sandbox.vcluster import FAULTS_NAME, FAULTS_NAMESPACE

CHART = REPO / "chart"
CHART_VERSION = yaml_value(CHART / "Chart.yaml", "version")
APP_VERSION = yaml_value(CHART / "Chart.yaml", "appVersion")
MUTATING = {"create", "update", "patch", "delete", "deletecollection"}
# clusteradm 1.0.x's bootstrap identity (pkg/config/env.go), as a CSR's requester.
KUBESTELLAR_BOOTSTRAP_USER = "system:serviceaccount:open-cluster-management:agent-registration-bootstrap"
KUBESTELLAR_BOOTSTRAP_GROUPS = {"system:bootstrappers:managedcluster", "system:serviceaccounts:open-cluster-management"}


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
        self.state: dict[str, Any] = json.loads((self.root / "state.json").read_text())

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def external_kubeconfig(self) -> Path:
        """This worker's external cluster from the machine (through the relay)."""
        return self.add_cluster(EXTERNAL_CLUSTER)

    @property
    def external_incluster_kubeconfig(self) -> Path:
        """This worker's external cluster from inside the hosting cluster: what a bootstrap Secret holds."""
        self.add_cluster(EXTERNAL_CLUSTER)
        return kubeconfig_paths(self.root, EXTERNAL_CLUSTER)[1]

    @property
    def registry(self) -> str:
        return str(self.state["registry"])

    @property
    def ocm_registry(self) -> str:
        """Where the sandbox's registry holds OCM's images: every install uses it (the air-gapped path)."""
        return f"{self.registry}/open-cluster-management"

    def image_values_object(self, hook_image: bool = True) -> dict[str, Any]:
        """What a user of a private registry sets: every image of OCM (and, with hook_image, of the
        chart) from there, and the status add-on's chart (the stand-in) from there, trusted through
        the registry's CA. A released chart names its hook image itself: hook_image=False."""
        values: dict[str, Any] = {"global": {"imageRegistry": self.registry}} if hook_image else {}
        return {
            **values,
            "ocm": {"imageRegistry": self.ocm_registry},
            "statusAddon": {
                "chart": {
                    "repository": self.state["status_addon_chart"],
                    "caBundle": Path(self.state["registry_ca"]).read_text(),
                },
                "values": {"image": self.state["shell_image"]},
            },
        }

    def image_values(self, hook_image: bool = True) -> list[str]:
        """image_values_object() as helm flags."""

        def leaves(tree: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
            return [
                leaf
                for key, value in tree.items()
                for leaf in (
                    leaves(value, f"{prefix}{key}.") if isinstance(value, dict) and value else [(f"{prefix}{key}", value)]
                )
            ]

        return [
            arg
            for key, value in leaves(self.image_values_object(hook_image))
            for arg in ("--set-json", f"{key}={json.dumps(value)}")
        ]

    def rendered_its_json(self, itses: list[dict[str, Any]], *values: str) -> dict[str, Any]:
        """its.json as the chart renders it for these ITSes (values as users write them) with the
        sandbox's image values, in namespace default (where bootstrap Secrets default to)."""
        rendered = self.helm(
            "helm3",
            "template",
            "r",
            str(CHART),
            "-n",
            "default",
            *self.image_values(),
            *values,
            "--set-json",
            f"ITSes={json.dumps(itses)}",
            "--show-only",
            "templates/its-config.yaml",
        ).stdout
        config: dict[str, Any] = json.loads(yaml.safe_load(rendered)["data"]["its.json"])
        return config

    def status_addon_config(self, **chart: Any) -> dict[str, Any]:
        """its.json `statusAddon` as the chart renders it with image_values(), and `chart` overrides."""
        return {**self.rendered_its_json([{"name": "x"}])["statusAddon"], **chart}

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{BIN}:{os.environ['PATH']}",
            "HELM_PLUGINS": str(REPO / ".cache" / "helm" / "plugins"),
            "HELM_CACHE_HOME": str(self.helm_home / "cache"),
            "HELM_CONFIG_HOME": str(self.helm_home / "config"),
            "HELM_DATA_HOME": str(self.helm_home / "data"),
            **extra,
        }

    def run(
        self, *argv: str, check: bool = True, input: str | None = None, timeout: float = 600, **env: str
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            list(argv), env=self.env(**env), capture_output=True, text=True, input=input, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv[:4])}... exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.run(str(BIN / "kubectl"), *args, check=check, input=input)

    def helm(self, helm: str, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return self.run(str(BIN / helm), *args, check=check, timeout=timeout)

    # --- objects ---------------------------------------------------------------------------

    def controlplane(self, name: str) -> dict[str, Any] | None:
        found = or_none(
            self.custom.get_cluster_custom_object, "tenancy.kflex.kubestellar.org", "v1alpha1", "controlplanes", name
        )
        return None if found is None else as_object(found)

    def controlplane_names(self) -> list[str]:
        listed = as_object(self.custom.list_cluster_custom_object("tenancy.kflex.kubestellar.org", "v1alpha1", "controlplanes"))
        return [item["metadata"]["name"] for item in listed["items"]]

    def create_controlplane(self, name: str, cp_type: str, bootstrap: dict[str, str] | None = None) -> None:
        spec: dict[str, Any] = {"type": cp_type}
        if bootstrap:
            spec["bootstrapSecretRef"] = bootstrap
        manifest = {
            "apiVersion": "tenancy.kflex.kubestellar.org/v1alpha1",
            "kind": "ControlPlane",
            "metadata": {"name": name},
            "spec": spec,
        }
        self.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def delete_controlplane(self, name: str) -> None:
        self.kubectl("delete", "controlplane", name, "--ignore-not-found", "--wait=false")

    def space_gone(self, name: str) -> bool:
        """The ControlPlane, its namespace and everything in it are gone (KubeFlex's finalizer, then the
        garbage collector and the namespace controller). A ControlPlane made again before that meets a
        terminating namespace, and KubeFlex's back-off (doubling up to 1000 s) delays it."""
        return self.controlplane(name) is None and or_none(self.core.read_namespace, f"{name}-system") is None

    def create_bootstrap_secret(self, name: str, namespace: str, key: str = "kubeconfig-incluster") -> None:
        self.kubectl("create", "namespace", namespace, check=False)
        self.kubectl(
            "create", "secret", "generic", name, "-n", namespace, f"--from-file={key}={self.external_incluster_kubeconfig}"
        )

    def vcluster_kubeconfig(self, name: str) -> str:
        """A vcluster space's admin kubeconfig for this machine: the one vcluster writes for use outside
        the hosting cluster (vc-vcluster, key `config`), at the NodePort of KubeFlex's Service
        vcluster-nodeport, which the sandbox relays to the machine's loopback (relays/nodeport-<port>
        says at which port)."""
        config = yaml.safe_load(secret_text(self.core.read_namespaced_secret("vc-vcluster", f"{name}-system"), "config"))
        for cluster in config["clusters"]:
            cluster["cluster"]["server"] = f"https://127.0.0.1:{self.vcluster_machine_port(name)}"
        return str(yaml.safe_dump(config))

    def vcluster_machine_port(self, name: str) -> int:
        """The machine's loopback port the sandbox relays the NodePort of vcluster-nodeport to."""
        service = self.core.read_namespaced_service("vcluster-nodeport", f"{name}-system")
        node_port = next(port.node_port for port in service.spec.ports if port.node_port)
        record = self.root / "relays" / f"nodeport-{node_port}"
        wait_until(f"the sandbox's relay of NodePort {node_port}", record.exists, timeout=60)
        return int(record.read_text())

    def space_kubeconfig(self, name: str) -> str:
        """An admin kubeconfig of a space for this machine: a vcluster's through its NodePort; a host
        ITS's is the hosting cluster's; an external one's the external cluster's."""
        cp = self.controlplane(name)
        assert cp is not None, f"no ControlPlane {name}"
        if cp["spec"]["type"] == "host":
            return self.kubeconfig.read_text()
        if cp["spec"]["type"] == "external":
            return self.external_kubeconfig.read_text()
        return self.vcluster_kubeconfig(name)

    def space_api(self, name: str) -> client.ApiClient:
        return api_client(self.space_kubeconfig(name))

    # --- clusters on demand: workload clusters, and the clusters external ITSes adopt -----------

    @staticmethod
    def api_client_for(kubeconfig_path: Path) -> client.ApiClient:
        return api_client(kubeconfig_path.read_text())

    def add_cluster(self, name: str, timeout: float = 180) -> Path:
        """A cluster of its own API server (its pods run on the node), started if it is not running.
        Returns its kubeconfig, valid on this machine and inside the sandbox's namespace alike."""
        path = kubeconfig_paths(self.root, name)[0]
        if path.exists():
            return path
        self.core.patch_namespaced_config_map(CLUSTERS_NAME, CLUSTERS_NAMESPACE, {"data": {name: "{}"}})
        end = time.monotonic() + timeout
        while not path.exists():
            if time.monotonic() > end:
                raise AssertionError(f"cluster {name} did not start: {self.root / 'logs' / 'supervisor.log'}")
            time.sleep(0.5)
        return path

    def remove_cluster(self, name: str) -> None:
        self.core.patch_namespaced_config_map(
            CLUSTERS_NAME, CLUSTERS_NAMESPACE, {"data": {name: None}}, _content_type="application/merge-patch+json"
        )

    def hub_kubeconfig(self, its: str) -> Path:
        """The ITS's space, for clusteradm on this machine."""
        path = self.root / "hubs" / f"{its}.kubeconfig"
        path.parent.mkdir(exist_ok=True)
        path.write_text(self.space_kubeconfig(its))
        path.chmod(0o600)
        return path

    def join(self, wec: str, its: str, wec_kubeconfig: Path) -> None:
        """What a WEC's administrator and the ITS's do with this project's clusteradm (v0.8.1): get token,
        join, then accept on the hub."""
        hub = self.hub_kubeconfig(its)
        token = re.search(
            r"^token=(\S+)$", self.run(str(BIN / "clusteradm"), "get", "token", "--kubeconfig", str(hub)).stdout, re.MULTILINE
        )
        assert token, "clusteradm get token printed no token"
        self.clusteradm_join(wec, wec_kubeconfig, its, token.group(1))
        self.run(str(BIN / "clusteradm"), "accept", "--clusters", wec, "--kubeconfig", str(hub), "--wait")

    def join_as_kubestellar(self, wec: str, its: str, wec_kubeconfig: Path, accept: bool = True) -> list[str]:
        """KubeStellar 0.30's onboarding, whose tools are clusteradm 1.0.x (which cannot be built here),
        step by step as clusteradm v1.0.2's source does it. Returns the requesters of the CSRs approved.

        1. `clusteradm get token` (pkg/helpers/client.go, GetBootstrapTokenFromSA): a TokenRequest of
           ServiceAccount open-cluster-management/agent-registration-bootstrap, expirationSeconds 3600,
           no audience; on a hub without that ServiceAccount it fails, as 1.0 does.
        2. `clusteradm join --hub-token ... --singleton` (KubeStellar's setup-kubestellar.sh): the real
           clusteradm join, whose bootstrap kubeconfig (server, token, CA from kube-public/cluster-info)
           1.0 builds the same way (createExternalBootstrapConfig).
        3. `clusteradm accept --clusters <wec> --wait` (pkg/cmd/accept/exec.go): every second, the CSRs
           labelled open-cluster-management.io/cluster-name=<wec> whose spec.username starts with
           `system:bootstrap:` or is 1.0's bootstrap ServiceAccount, and whose groups hold
           system:bootstrappers:managedcluster or system:serviceaccounts:open-cluster-management, all of
           one requester, get condition Approved (UpdateApproval); then the ManagedCluster gets
           hubAcceptsClient=true (merge patch); until a CSR is approved and the ManagedCluster exists.
           Not done with accept=False, for a hub that approves the identity itself."""
        space = self.space_api(its)
        request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))
        token = client.CoreV1Api(space).create_namespaced_service_account_token(
            "agent-registration-bootstrap", "open-cluster-management", request
        )
        self.clusteradm_join(wec, wec_kubeconfig, its, str(token.status.token), "--singleton")
        if not accept:  # a hub that auto-approves this identity
            return []
        certificates, clusters = client.CertificatesV1Api(space), client.CustomObjectsApi(space)

        def approve() -> list[str] | None:
            labelled = certificates.list_certificate_signing_request(
                label_selector=f"open-cluster-management.io/cluster-name={wec}"
            ).items
            eligible = [
                csr
                for csr in labelled
                if str(csr.spec.username).startswith(("system:bootstrap:", KUBESTELLAR_BOOTSTRAP_USER))
                and set(csr.spec.groups or [])
                & {"system:bootstrappers:managedcluster", "system:serviceaccounts:open-cluster-management"}
            ]
            requesters = sorted({str(csr.spec.username) for csr in eligible})
            if len(requesters) != 1:  # none yet, or several: 1.0 approves nothing then
                return None
            for csr in eligible:
                if not {c.type for c in csr.status.conditions or []} & {"Approved", "Denied"}:
                    approved = client.V1CertificateSigningRequestCondition(
                        type="Approved", status="True", reason="clusteradm Approve"
                    )
                    csr.status.conditions = [*(csr.status.conditions or []), approved]
                    certificates.replace_certificate_signing_request_approval(str(csr.metadata.name), csr)
            clusters.patch_cluster_custom_object(
                "cluster.open-cluster-management.io", "v1", "managedclusters", wec, {"spec": {"hubAcceptsClient": True}}
            )
            return requesters

        return list(wait_until(f"clusteradm 1.0's accept of {wec}", approve, timeout=600))

    def clusteradm_join(self, wec: str, wec_kubeconfig: Path, its: str, token: str, *flags: str) -> None:
        """The real clusteradm join on the WEC's side (where the hub's address resolves: the sandbox's
        namespace, where the node's address reaches every API server); the klusterlet's images from the
        sandbox's registry."""
        hub = self.hub_kubeconfig(its)
        if (self.controlplane(its) or {})["spec"]["type"] == "vcluster":  # at its NodePort, as cluster-info says
            service = self.core.read_namespaced_service("vcluster-nodeport", f"{its}-system")
            port = str(next(p.node_port for p in service.spec.ports if p.node_port))
        else:  # an API server of the sandbox: the same port on the machine and in the namespace
            port = yaml.safe_load(hub.read_text())["clusters"][0]["cluster"]["server"].rsplit(":", 1)[1]
        self.run(
            "nsenter",
            f"--net=/run/netns/{self.state['netns']}",
            str(BIN / "clusteradm"),
            "join",
            "--hub-token",
            token,
            "--hub-apiserver",
            f"https://{self.state['node_ip']}:{port}",
            "--cluster-name",
            wec,
            "--kubeconfig",
            str(wec_kubeconfig),
            "--image-registry",
            self.ocm_registry,
            "--bundle-version",
            "default",
            "--wait",
            *flags,
            timeout=600,
        )

    def set_faults(self, key: str, **faults: Any) -> None:
        patch = {"data": {key: json.dumps(faults)}}
        self.core.patch_namespaced_config_map(
            FAULTS_NAME, FAULTS_NAMESPACE, patch, _content_type="application/merge-patch+json"
        )

    def clear_faults(self, key: str) -> None:
        patch = {"data": {key: None}}
        self.core.patch_namespaced_config_map(
            FAULTS_NAME, FAULTS_NAMESPACE, patch, _content_type="application/merge-patch+json"
        )

    # --- audit ------------------------------------------------------------------------------

    def audit(self, since: float) -> list[dict[str, Any]]:
        """The hosting cluster's audit events (ResponseComplete) received at or after `since`."""
        return audit_events(self.hosting_audit.read_text().splitlines(), since)

    def space_audit(self, since: float, name: str) -> list[dict[str, Any]]:
        """The same, of an ITS's space: a vcluster's API server writes its audit log to its container's
        output (every restart and every pod of the StatefulSet `vcluster`, as the node keeps them)."""
        cp_type = ((self.controlplane(name) or {}).get("spec") or {}).get("type", "")
        if cp_type == "host":
            return self.audit(since)
        if cp_type == "external":
            path = self.root / "apiservers" / apiserver_name(EXTERNAL_CLUSTER) / "audit.log"
            return audit_events(path.read_text().splitlines(), since)
        logs = sorted((self.root / "node" / "kubelet" / "pod-logs").glob(f"{name}-system_vcluster-0_*/vcluster/*.log"))
        return audit_events("".join(cri_log(path) for path in logs).splitlines(), since)

    def token_kubeconfig(self, path: Path, namespace: str, service_account: str) -> Path:
        """A kubeconfig with a token of a ServiceAccount: requests are made, and audited, as that account."""
        request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))
        token = self.core.create_namespaced_service_account_token(service_account, namespace, request).status.token
        admin = yaml.safe_load(self.kubeconfig.read_text())
        cluster = admin["clusters"][0]["cluster"]
        path.write_text(
            kubeconfig(cluster["server"], base64.b64decode(cluster["certificate-authority-data"]), service_account, token=token)
        )
        path.chmod(0o600)
        return path


# The API server renews its own identity lease every few seconds: not a client's write.
SERVER_SELF = "system:apiserver"


def audit_events(lines: list[str], since: float) -> list[dict[str, Any]]:
    """Audit events (ResponseComplete, JSON lines among others) received at or after `since`."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(since))
    events = []
    for line in lines:
        if not line.startswith('{"kind":"Event"'):
            continue
        event = json.loads(line)
        if event.get("stage") == "ResponseComplete" and event["requestReceivedTimestamp"][:19] >= stamp:
            events.append(event)
    return events


def mutating(events: list[dict[str, Any]], user: str | None = None, agent: str | None = None) -> list[str]:
    """'verb resource/name by user' for each write of `user` or of clients whose user agent starts with
    `agent` (or of any client), for readable failures. Dry runs store nothing: not writes."""
    return [
        f"{e['verb']} {e.get('objectRef', {}).get('resource')}/{e.get('objectRef', {}).get('name')} "
        f"by {e['user']['username']} ({e.get('userAgent', '')})"
        for e in events
        if e["verb"] in MUTATING
        and e["user"]["username"] != SERVER_SELF
        and "dryRun=All" not in e.get("requestURI", "")
        and (user is None or e["user"]["username"] == user)
        and (agent is None or e.get("userAgent", "").startswith(agent))
    ]


# In a space the hook acts with the space's admin credentials, as KubeFlex's stand-in and the pod
# syncer do: its requests are told apart by its user agent.
HOOK_AGENT = "ks-its-hook/"


# Set by tests/run.py: the sandbox of the run, which its pytest processes share instead of starting one.
SANDBOX_ENV = "KS_ITS_SANDBOX"
# The pytest-xdist worker this process is ("w0" when the suite runs in one process): what a test
# makes carries it, so that tests of another worker, running at the same time, leave it alone.
WORKER = "w" + os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")


def unique(prefix: str) -> str:
    return f"{prefix}-{WORKER}{uuid.uuid4().hex[:6]}"


@contextlib.contextmanager
def hold_host_hub(sandbox: Sandbox) -> Iterator[None]:
    """The hosting cluster is one hub, which serves one ITS at a time (it refuses a second live one):
    held across workers (the scheduler also runs these tests on one worker, tests.scheduling.HOST_HUB)
    until this worker's ControlPlanes of type host are deleted, which frees the hub."""
    with open(sandbox.root / "host-hub.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            listed = as_object(
                sandbox.custom.list_cluster_custom_object("tenancy.kflex.kubestellar.org", "v1alpha1", "controlplanes")
            )
            for cp in listed["items"]:
                if cp["spec"]["type"] == "host" and made_here(cp["metadata"]["name"]):
                    sandbox.delete_controlplane(cp["metadata"]["name"])
            fcntl.flock(lock, fcntl.LOCK_UN)


# The existing cluster this worker's external ITSes adopt. One hub serves one ITS at a time (the hub
# refuses a second live one): each worker has its own, and runs its tests one after another.
EXTERNAL_CLUSTER = f"external-{WORKER}"


def made_here(name: str) -> bool:
    """Whether unique() made this name in this worker."""
    return re.search(rf"-{WORKER}[0-9a-f]{{6}}$", name) is not None


# A ServiceAccount with cluster-admin, so that the hook's own requests can be told apart in audit
# logs: one per worker, as another worker's tests run hooks at the same time.
HOOK_RUNNER = f"hook-runner-{WORKER}"
HOOK_RUNNER_USER = f"system:serviceaccount:default:{HOOK_RUNNER}"


def its_config(
    sandbox: Sandbox,
    itses: list[dict[str, Any]],
    deadline: int = 120,
    ocm_registry: str | None = None,
    status_addon: dict[str, Any] | None = None,
) -> str:
    """its.json as the chart renders it for these ITSes (bootstrap Secrets in namespace default), with
    what a test sets that the schema refuses (a deadline below 30 s) or that is no value of the chart
    (status add-on settings of its own)."""
    config = sandbox.rendered_its_json(itses)
    config["deadlineSeconds"] = deadline
    if ocm_registry is not None:
        config["ocm"]["imageRegistry"] = ocm_registry
    if status_addon is not None:
        config["statusAddon"] = status_addon
    return json.dumps(config)


@dataclass
class HookRun:
    """A finished hook pod, as a finished process: its exit code and its output (the hook logs to stderr)."""

    returncode: int
    stderr: str
    reason: str
    termination_message: str


def chart_hook_pod_spec(sandbox: Sandbox) -> dict[str, Any]:
    """The hook Job's pod spec as the chart renders it with the sandbox's registry: its image, security
    contexts, environment, resources and volumes, so that a HookPod runs as the chart's pods do."""
    rendered = sandbox.helm(
        "helm3",
        "template",
        "r",
        str(CHART),
        "--set-json",
        'ITSes=[{"name":"x"}]',
        "--set",
        f"global.imageRegistry={sandbox.registry}",
        "--show-only",
        "templates/hook-job.yaml",
    ).stdout
    spec: dict[str, Any] = yaml.safe_load(rendered)["spec"]["template"]["spec"]
    return spec


class HookPod:
    """The hook image run as a pod of the node with the pod template of the chart's hook Job
    (restricted, read-only root, /tmp an emptyDir, the chart's resources), but its its.json in a
    ConfigMap of its own and as ServiceAccount `account` of `namespace`."""

    def __init__(
        self,
        sandbox: Sandbox,
        itses: list[dict[str, Any]],
        deadline: int = 300,
        command: str = "install",
        account: str = HOOK_RUNNER,
        namespace: str = "default",
        env: dict[str, str] | None = None,
        files: dict[str, str] | None = None,
        ocm_registry: str | None = None,
        status_addon: dict[str, Any] | None = None,
    ) -> None:
        """files: executable files mounted at /opt/extra (a stand-in for a tool, first on PATH)."""
        self.sandbox = sandbox
        self.namespace = namespace
        self.name = unique("hook-run")
        self.deadline = deadline
        core = sandbox.core
        core.create_namespaced_config_map(
            namespace,
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name=self.name),
                data={"its.json": its_config(sandbox, itses, deadline, ocm_registry, status_addon), **(files or {})},
            ),
        )
        spec = chart_hook_pod_spec(sandbox)
        (container,) = spec["containers"]
        (config,) = [volume for volume in spec["volumes"] if "configMap" in volume]
        config["configMap"] = {"name": self.name}
        overrides = {**(env or {})}
        if files:
            overrides["PATH"] = "/opt/extra:/opt/ks-its/bin:/usr/local/bin:/usr/bin:/bin"
            config["configMap"]["defaultMode"] = 0o755
            container["volumeMounts"].append({"name": config["name"], "mountPath": "/opt/extra", "readOnly": True})
        # No Job runs this pod: the Events the hook puts on its Job would have nowhere to go, and its
        # deadline starts with it, not with a run's first Job.
        container["env"] = [
            variable
            for variable in container["env"]
            if variable["name"] not in overrides and variable["name"] not in ("ITS_HOOK_JOB", "ITS_RUN_JOB")
        ] + [{"name": key, "value": value} for key, value in overrides.items()]
        container["command"][1] = command
        spec["serviceAccountName"] = account
        core.create_namespaced_pod(
            namespace,
            manifest(
                {"apiVersion": "v1", "kind": "Pod", "spec": spec, "metadata": {"name": self.name, "namespace": namespace}}
            ),
        )

    def _pod(self) -> Any:
        return self.sandbox.core.read_namespaced_pod(self.name, self.namespace)

    def read_until(self, marker: str, timeout: float = 180) -> list[str]:
        """The log lines up to the first that holds marker (the pod is left running)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if (self._pod().status.phase or "Pending") != "Pending":
                break
            time.sleep(0.2)
        lines: list[str] = []
        stream: Any = self.sandbox.core.read_namespaced_pod_log(
            self.name, self.namespace, follow=True, _preload_content=False, _request_timeout=timeout
        )
        try:
            for raw in stream.stream(decode_content=True):
                for line in raw.decode(errors="replace").splitlines():
                    lines.append(line)
                    if marker in line:
                        return lines
        finally:
            stream.release_conn()
        raise AssertionError(f"the hook never logged {marker!r}:\n" + "\n".join(lines))

    def kill(self) -> None:
        """SIGKILL, as a killed pod: delete at once, and wait until the node stopped it."""
        self.sandbox.core.delete_namespaced_pod(self.name, self.namespace, grace_period_seconds=0)
        wait_until(f"hook pod {self.name} gone", lambda: or_none(self._pod) is None, timeout=120, interval=0.2)
        self.sandbox.core.delete_namespaced_config_map(self.name, self.namespace)

    def wait(self) -> HookRun:
        end = time.monotonic() + self.deadline + 240
        while time.monotonic() < end:
            status = self._pod().status
            container = (status.container_statuses or [None])[0]
            if status.phase in ("Succeeded", "Failed") and container and container.state.terminated:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"hook pod {self.namespace}/{self.name} did not finish")
        terminated = container.state.terminated
        logs = self.sandbox.core.read_namespaced_pod_log(self.name, self.namespace)
        keep_hook_log(self.sandbox, f"{self.namespace}_{self.name}", logs)
        self.sandbox.core.delete_namespaced_pod(self.name, self.namespace, grace_period_seconds=0)
        self.sandbox.core.delete_namespaced_config_map(self.name, self.namespace)
        return HookRun(
            returncode=terminated.exit_code,
            stderr=logs,
            reason=terminated.reason or "",
            termination_message=terminated.message or "",
        )


def release(sandbox: Sandbox, dist: Path) -> subprocess.CompletedProcess[str]:
    """`make release` to the sandbox's registry: the hook image, and the chart pointed at it."""
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "release",
            f"REGISTRY={sandbox.registry}",
            f"REGISTRY_CA={sandbox.state['registry_ca']}",
            f"DIST={dist}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )


def keep_hook_log(sandbox: Sandbox, name: str, output: str) -> None:
    """Every hook run's output is kept with the pod logs, so the secret scan reads it too."""
    (sandbox.root / "logs" / "pods").mkdir(parents=True, exist_ok=True)
    (sandbox.root / "logs" / "pods" / f"{name}.hook.log").write_text(output)


def run_hook(
    sandbox: Sandbox, itses: list[dict[str, Any]], deadline: int = 300, command: str = "install", **options: Any
) -> HookRun:
    """One hook run to its end, as a pod (see HookPod for the options)."""
    return HookPod(sandbox, itses, deadline, command, **options).wait()


REPORTS: list[str] = []


def wait_until(
    what: str, predicate: Callable[[], Any], timeout: float = 180, shown: Callable[[], Any] | None = None, interval: float = 1.0
) -> Any:
    """Poll predicate until it returns something true, and return that; an ApiException counts as not
    yet. On timeout the failure says what was awaited and what `shown()` returns then."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with contextlib.suppress(client.exceptions.ApiException):
            value = predicate()
            if value:
                return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}" + (f": {shown()}" if shown else ""))


def dry_run_apply(sandbox: Sandbox, docs: list[dict[str, Any]], namespace: str) -> subprocess.CompletedProcess[str]:
    """`kubectl apply --dry-run=server` of rendered documents. What the install hooks put in a space's
    namespace (`<name>-system`) is applied once KubeFlex made it: here it is checked in `namespace`."""
    spaces = {f"{doc['metadata']['name']}-system" for doc in docs if doc["kind"] == "ControlPlane"}
    docs = [
        {**doc, "metadata": {**doc["metadata"], "namespace": namespace}} if doc["metadata"].get("namespace") in spaces else doc
        for doc in docs
    ]
    return sandbox.kubectl(
        "apply",
        "--dry-run=server",
        "-f",
        "-",
        check=False,
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}),
    )


HUB_CRDS = (
    "managedclusters.cluster.open-cluster-management.io",
    "manifestworks.work.open-cluster-management.io",
    "placements.cluster.open-cluster-management.io",
    "managedclustersetbindings.cluster.open-cluster-management.io",
)


def create_its(sandbox: Sandbox, name: str, its_type: str) -> dict[str, Any]:
    if its_type == "external":
        sandbox.create_bootstrap_secret(f"{name}-bootstrap", "default")
        sandbox.create_controlplane(
            name, "external", {"name": f"{name}-bootstrap", "namespace": "default", "inClusterKey": "kubeconfig-incluster"}
        )
    else:
        sandbox.create_controlplane(name, its_type)
    return {"name": name, "type": its_type}


def status_addon_pods(sandbox: Sandbox, its: str) -> list[Any]:
    """The status add-on controller's pods in the space, Running."""
    return [
        pod
        for pod in client.CoreV1Api(sandbox.space_api(its))
        .list_namespaced_pod("open-cluster-management", label_selector="app.kubernetes.io/name=addon-status-controller")
        .items
        if pod.status.phase == "Running"
    ]


STATUS_ADDON_CRDS = (
    "placements.cluster.open-cluster-management.io",
    "managedclustersetbindings.cluster.open-cluster-management.io",
)


def helm_in_space(sandbox: Sandbox, its: str, *args: str) -> Any:
    result = sandbox.run(
        str(BIN / "helm"),
        *args,
        "--namespace",
        "open-cluster-management",
        "--output",
        "json",
        "--kubeconfig",
        str(sandbox.hub_kubeconfig(its)),
    )
    return json.loads(result.stdout)


def assert_status_addon(sandbox: Sandbox, its: str, verbosity: int = 2, hub_qps: int = 5) -> None:
    """The release is deployed at the pinned version with the chart's settings, its controller runs with
    them, and it was installed only after the CRDs it needs were Established."""
    [release] = helm_in_space(sandbox, its, "list", "--filter", "^status-addon$")
    assert (release["chart"], release["status"]) == ("ocm-status-addon-chart-v0.2.0-rc17", "deployed")
    # A Running pod with these settings (after an upgrade, the old pod may still be stopping).
    commands = [pod.spec.containers[0].command for pod in status_addon_pods(sandbox, its)]
    assert any(f"--v={verbosity}" in args and f"--agent-hub_qps={hub_qps}" in args for args in commands), commands
    space = sandbox.space_api(its)
    custom = client.CustomObjectsApi(space)
    assert custom.get_namespaced_custom_object(
        "cluster.open-cluster-management.io", "v1beta1", "open-cluster-management", "placements", "global"
    )
    assert custom.get_namespaced_custom_object(
        "cluster.open-cluster-management.io", "v1beta2", "open-cluster-management", "managedclustersetbindings", "global"
    )
    extensions = client.ApiextensionsV1Api(space)
    assert extensions.read_custom_resource_definition("workstatuses.control.kubestellar.io")
    status = helm_in_space(sandbox, its, "status", "status-addon")
    installed = datetime.fromisoformat(status["info"]["first_deployed"])
    for name in STATUS_ADDON_CRDS:
        [established] = [
            c
            for c in extensions.read_custom_resource_definition(name).status.conditions
            if c.type == "Established" and c.status == "True"
        ]
        assert established.last_transition_time and established.last_transition_time <= installed, (
            name,
            established.last_transition_time,
            installed,
        )


def container_state(pod: Any) -> Any:
    """The state of a pod's (first and only) container."""
    statuses = pod.status.container_statuses or []
    assert statuses, f"pod {pod.metadata.name} has no container status"
    return statuses[0].state


def hub_conditions(space: client.ApiClient) -> dict[str, str]:
    cm = as_object(
        client.CustomObjectsApi(space).get_cluster_custom_object(
            "operator.open-cluster-management.io", "v1", "clustermanagers", "cluster-manager"
        )
    )
    return {c["type"]: c["status"] for c in cm["status"]["conditions"]}


def hub_healthy(conditions: dict[str, str]) -> bool:
    """Applied and not Progressing or Degraded, as the hook requires."""
    return (
        conditions.get("Applied"),
        conditions.get("Progressing"),
        conditions.get("HubRegistrationDegraded"),
        conditions.get("HubPlacementDegraded", "False"),
    ) == ("True", "False", "False", "False")


def hub_settled(sandbox: Sandbox, name: str, space: client.ApiClient) -> None:
    """The hub as the hook saw it when it said Ready. A node as loaded as the test machine's may
    restart a hub pod after that (a liveness probe not answered in time): such a hub is given up to 2
    minutes to heal, and the run's summary says each time it needed to, with the hub pods' restarts,
    so that it cannot go unnoticed."""
    conditions = hub_conditions(space)
    if hub_healthy(conditions):
        return
    pods = client.CoreV1Api(space).list_namespaced_pod("open-cluster-management-hub").items
    restarts = {str(pod.metadata.name): [c.restart_count for c in pod.status.container_statuses or []] for pod in pods}
    started = time.monotonic()
    wait_until(
        f"the hub of ITS {name} to settle",
        lambda: hub_healthy(hub_conditions(space)),
        timeout=120,
        shown=lambda: hub_conditions(space),
    )
    REPORTS.append(
        f"hub settle: ITS {name}'s hub was {conditions} after the hook said Ready; healthy again after "
        f"{time.monotonic() - started:.0f}s (hub pod restarts: {restarts})"
    )


def assert_ready_its(sandbox: Sandbox, name: str, status_addon: bool = True) -> None:
    """Ready as a user means it: labelled, the hub applied and running, its webhooks judging requests,
    and (unless opted out) the status add-on's controller running."""
    cp = sandbox.controlplane(name)
    assert cp is not None
    assert cp["metadata"]["labels"]["kflex.kubestellar.io/cptype"] == "its"
    assert cp["metadata"]["annotations"]["its.kubestellar.io/status"] == "Ready"
    space = sandbox.space_api(name)
    hub_settled(sandbox, name, space)
    for deployment in client.AppsV1Api(space).list_namespaced_deployment("open-cluster-management-hub").items:
        assert deployment.status.available_replicas == deployment.spec.replicas, deployment.metadata.name
    extensions = client.ApiextensionsV1Api(space)
    for crd in HUB_CRDS:
        conditions_ = extensions.read_custom_resource_definition(crd).status.conditions
        assert any(c.type == "Established" and c.status == "True" for c in conditions_), crd
    # The work webhook judges a ManifestWork: an empty one is refused by it, not by the schema.
    empty = {
        "apiVersion": "work.open-cluster-management.io/v1",
        "kind": "ManifestWork",
        "metadata": {"name": "probe", "namespace": "default"},
        "spec": {"workload": {"manifests": []}},
    }
    try:
        client.CustomObjectsApi(space).create_namespaced_custom_object(
            "work.open-cluster-management.io", "v1", "default", "manifestworks", empty, dry_run="All"
        )
        raise AssertionError("the ManifestWork webhook let an empty ManifestWork through")
    except client.exceptions.ApiException as err:
        assert "manifests should not be empty" in (err.body or ""), err.body
    assert client.CoreV1Api(space).read_namespace("customization-properties").status.phase == "Active"
    addon = as_object(
        client.CustomObjectsApi(space).list_cluster_custom_object(
            "addon.open-cluster-management.io", "v1alpha1", "clustermanagementaddons"
        )
    )["items"]
    assert bool(status_addon_pods(sandbox, name)) is status_addon
    assert [a["metadata"]["name"] for a in addon] == (["addon-status"] if status_addon else [])


def install(
    sandbox: Sandbox, helm: str, release: str, namespace: str, itses: list[dict[str, Any]], *extra: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return sandbox.helm(
        helm,
        "upgrade",
        "--install",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--create-namespace",
        "--wait",
        "--timeout",
        "480s",  # bounds a failure only; five ITSes at once through KubeFlex's one worker, under load
        *sandbox.image_values(),
        "--set-json",
        f"ITSes={json.dumps(itses)}",
        *extra,
        check=check,
    )


def three_types(sandbox: Sandbox, namespace: str, prefix: str) -> list[dict[str, Any]]:
    itses = [
        {"name": unique(f"{prefix}-vc")},
        {"name": unique(f"{prefix}-host"), "type": "host"},
        {"name": unique(f"{prefix}-ext"), "type": "external"},
    ]
    sandbox.create_bootstrap_secret(f"{itses[2]['name']}-bootstrap", namespace)  # as a user would, first
    return itses


def hook_user(namespace: str, release: str) -> str:
    return f"system:serviceaccount:{namespace}:{release}-hook"


def pod_cgroup(hierarchy: Path, uid: str) -> Path:
    """A pod's cgroup under the node's cgroup root of one hierarchy, by its QoS class (the kubelet's
    cgroupfs layout); FileNotFoundError when the pod has none (yet, or any more)."""
    for qos in ("", "burstable", "besteffort"):
        path = hierarchy / "kubepods" / qos / f"pod{uid}"
        if path.is_dir():
            return path
    raise FileNotFoundError(f"no cgroup of pod {uid} under {hierarchy}")


def working_set(cgroup: Path) -> int:
    """A memory cgroup's working set, as the kubelet counts it (and evicts by): usage less the inactive
    page cache, which the kernel reclaims before it kills anything. The cgroup's own high-water mark
    (memory.max_usage_in_bytes) counts that cache too, so it reaches any limit without harm."""
    stat = dict(line.split() for line in (cgroup / "memory.stat").read_text().splitlines())
    return max(0, int((cgroup / "memory.usage_in_bytes").read_text()) - int(stat["total_inactive_file"]))


class PodUsage:
    """The memory peak (working set) and CPU time of each pod matching a label selector, from its
    cgroups on the node (the kubelet's pod cgroup: every process of the pod, clusteradm runs
    included), sampled every `interval` until stopped."""

    def __init__(self, sandbox: Sandbox, namespace: str, selector: str, interval: float = 0.1) -> None:
        self.sandbox, self.namespace, self.selector, self.interval = sandbox, namespace, selector, interval
        self.peak_bytes: dict[str, int] = {}
        self.cpu_seconds: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True, name="pod-usage")
        root = Host(sandbox.root).kubelet_cgroup_root.lstrip("/")
        self._memory, self._cpu = Path("/sys/fs/cgroup/memory") / root, Path("/sys/fs/cgroup/cpuacct") / root

    def __enter__(self) -> PodUsage:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                pods = self.sandbox.core.list_namespaced_pod(self.namespace, label_selector=self.selector).items
            except client.exceptions.ApiException:
                continue
            for pod in pods:
                name, uid = str(pod.metadata.name), str(pod.metadata.uid)
                # A pod's cgroup goes when the pod does, at any moment: a read that fails is no sample.
                with contextlib.suppress(OSError, ValueError):
                    self.peak_bytes[name] = max(working_set(pod_cgroup(self._memory, uid)), self.peak_bytes.get(name, 0))
                with contextlib.suppress(OSError, ValueError):
                    used = int((pod_cgroup(self._cpu, uid) / "cpuacct.usage").read_text()) / 1e9
                    self.cpu_seconds[name] = max(used, self.cpu_seconds.get(name, 0.0))
