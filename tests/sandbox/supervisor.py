"""Starts and stops the whole sandbox.

`up`, on the machine, makes the network namespace and cgroups (host.py) and starts the supervisor
inside them: `python -m tests.sandbox serve`, which starts etcd, the API servers, the real node
(node.py), the registry, the chart repository KubeFlex's vcluster type installs from (loft.py), the
real KubeFlex operator from its chart (kubeflex_operator.py), and relays each server, and each
vcluster space's NodePort, to the machine's loopback on the same port (relay.py). Everything it
starts stays in the sandbox's cgroup, so teardown ends it all even after a crash. A test session
passes a lifeline: when the session's process dies, however it dies, the supervisor tears the
sandbox down.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client

from . import kubeflex_operator, ports
from .argocd import ArgoCD
from .certs import CertificateAuthority
from .clusters import Clusters
from .host import KUBERNETES_SERVICE_IP, NODE_IP, SERVICE_CIDR, UNIFIED, Host
from .kube import api_client, run_watch
from .loft import ChartRepository
from .node import LogKeeper, Node, Registry
from .relay import Relays
from .servers import (
    REPO,
    ApiServer,
    ControllerManager,
    Etcd,
    StartError,
    pid_alive,
    pinned,
    tool,
    yaml_value,
)
from .vcluster import FAULTS_NAME, FAULTS_NAMESPACE

DEFAULT_DIR = REPO / ".cache" / "sandbox"
IMAGES = REPO / ".cache" / "images"
# Content-addressed and shared by every sandbox: a push of an image already there moves no layer.
REGISTRY_STORAGE = REPO / ".cache" / "registry"
SELF_CHECK_CHART = Path(__file__).parent / "selfcheck-chart"
# The stand-in for KubeStellar's status add-on chart, which no reachable registry serves.
STATUS_ADDON_CHART = REPO / "tests" / "charts" / "ocm-status-addon-chart"
CHARTS_REPOSITORY = "kubestellar"
CLUSTER_DNS = Path(__file__).parent / "cluster-dns.yaml"
HOOK_IMAGE = f"kubestellar/ks-its-hooks:{yaml_value(REPO / 'chart' / 'Chart.yaml', 'appVersion')}"
HOSTING_NAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")
# The hosting cluster runs what a real one does for the chart and the node: Jobs, Deployments,
# EndpointSlices, namespaces, garbage collection, ServiceAccounts, aggregated ClusterRoles.
HOSTING_CONTROLLERS = (
    "job-controller",
    "namespace-controller",
    "garbage-collector-controller",
    "serviceaccount-controller",
    "ttl-after-finished-controller",
    "pod-garbage-collector-controller",
    "root-ca-certificate-publisher-controller",
    "deployment-controller",
    "replicaset-controller",
    "endpointslice-controller",
    "clusterrole-aggregation-controller",
    # Lifts the not-ready taint the kubelet registers the node with, once it is Ready.
    "node-lifecycle-controller",
    # A host ITS's hub signs its managed clusters' client certificates.
    "certificatesigningrequest-signing-controller",
    # KubeFlex's host type waits for the token of a legacy ServiceAccount token Secret.
    "serviceaccount-token-controller",
    # KubeFlex's vcluster spaces are StatefulSets; it runs cmupdate as a Job.
    "statefulset-controller",
)
# The Service KubeFlex puts in front of each vcluster space for access from outside the cluster.
VCLUSTER_NODEPORT = "vcluster-nodeport"


def pushed_images() -> list[tuple[Path, str]]:
    """(OCI archive, repository:tag in the registry) of every image `make images` built for the sandbox."""
    found = [(ref.with_suffix(".tar"), ref.read_text().strip()) for ref in sorted(IMAGES.glob("*.ref"))]
    if not found or not all(archive.exists() for archive, _ in found):
        raise StartError(f"the sandbox's images are not built: run `make images` (expected them in {IMAGES})")
    return found


class Supervisor:
    """The sandbox's parts, as the supervisor process (`serve`) starts, keeps and stops them. Tests and
    the demo reach a running sandbox through tests.harness.Sandbox."""

    def __init__(self, root: Path, machine_netns_fd: int) -> None:
        self.root = root
        self.host = Host(root)
        ports.machine_netns_fd = machine_netns_fd
        self.relays = Relays(root, machine_netns_fd)
        self.stop_event = threading.Event()
        self.etcd = Etcd(root)
        self.hosting = ApiServer(
            "hosting",
            root,
            self.etcd,
            hosts=(NODE_IP, KUBERNETES_SERVICE_IP, *HOSTING_NAMES),
            extra_args=(
                "--endpoint-reconciler-type=lease",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,PodSecurity,"
                "NodeRestriction,Priority,DefaultTolerationSeconds",
                "--kubelet-preferred-address-types=InternalIP",
            ),
        )
        self.kcm = ControllerManager(
            self.hosting,
            HOSTING_CONTROLLERS,
            extra_args=(
                f"--cluster-signing-cert-file={self.hosting.dir / 'ca.crt'}",
                f"--cluster-signing-key-file={self.hosting.dir / 'ca.key'}",
                f"--service-account-private-key-file={self.hosting.dir / 'sa.key'}",
            ),
        )
        self.clusters: Clusters | None = None
        # The sandbox's CA: the registry's and the chart repository's serving certificates.
        self.ca = CertificateAuthority("sandbox")
        self.registry = Registry(root, self.ca, REGISTRY_STORAGE)
        self.loft = ChartRepository(root, self.ca)
        self.node: Node | None = None
        self.argocd: ArgoCD | None = None
        self._log_lock = threading.Lock()

    def log(self, message: str) -> None:
        with self._log_lock:
            print(time.strftime("%H:%M:%S ") + message, flush=True)

    def _thread(self, name: str, target: Callable[[threading.Event], None]) -> None:
        threading.Thread(target=target, args=(self.stop_event,), daemon=True, name=name).start()

    @property
    def _kubectl_argv(self) -> list[str]:
        return [tool("kubectl"), "--kubeconfig", str(self.hosting.dir / "admin.kubeconfig")]

    def _kubectl(self, *args: str) -> None:
        subprocess.run([*self._kubectl_argv, *args], check=True, capture_output=True, timeout=120)

    def _relay_node_ports(self, stop: threading.Event) -> None:
        """Each vcluster space's NodePort, reachable from the machine (Relays.add_node_port)."""
        core = client.CoreV1Api(self.api)

        def list_fn(**kw: Any) -> Any:
            return core.list_service_for_all_namespaces(field_selector=f"metadata.name={VCLUSTER_NODEPORT}", **kw)

        def on_service(event: str, service: dict[str, Any]) -> None:
            for port in (service.get("spec") or {}).get("ports") or []:
                if event != "DELETED" and port.get("nodePort"):
                    self.relays.add_node_port(int(port["nodePort"]))

        run_watch(self.api, list_fn, on_service, stop, "nodeport-relays", self.log)

    def _push_images(self) -> None:
        certs = self.registry.ca_file.parent
        for archive, ref in pushed_images():
            subprocess.run(
                [
                    "skopeo",
                    "copy",
                    "--quiet",
                    f"--dest-cert-dir={certs}",
                    f"oci-archive:{archive}",
                    f"docker://{self.registry.address}/{ref}",
                ],
                check=True,
                capture_output=True,
                timeout=300,
            )

    def _push_charts(self) -> None:
        """The status add-on stand-in chart, at the version upstream pins, as `helm push` publishes it."""
        with tempfile.TemporaryDirectory(prefix="charts-") as work:
            env = {**os.environ, **{f"HELM_{kind}_HOME": f"{work}/{kind.lower()}" for kind in ("CACHE", "CONFIG", "DATA")}}
            helm = [tool("helm")]
            packaged = subprocess.run(
                [*helm, "package", str(STATUS_ADDON_CHART), "--destination", work],
                env=env,
                check=True,
                capture_output=True,
                text=True,
                timeout=60,
            )
            archive = packaged.stdout.strip().rsplit(" ", 1)[-1]
            subprocess.run(
                [
                    *helm,
                    "push",
                    archive,
                    f"oci://{self.registry.address}/{CHARTS_REPOSITORY}",
                    "--ca-file",
                    str(self.registry.ca_file),
                ],
                env=env,
                check=True,
                capture_output=True,
                timeout=60,
            )

    def start(self) -> None:
        began = time.monotonic()
        self.etcd.start()
        self.relays.add(self.etcd.port)
        self.hosting.start()
        self.relays.add(self.hosting.port)
        self.kcm.start()
        self.api = api_client(self.hosting.admin_kubeconfig())
        self.registry.start()
        self.relays.add(self.registry.port)
        self._push_images()
        self._push_charts()
        self._kubectl("apply", "--server-side", "-f", str(CLUSTER_DNS))
        self._kubectl("create", "configmap", FAULTS_NAME, "-n", FAULTS_NAMESPACE)
        # The stand-in vcluster's syncer reads its faults with its own ServiceAccount.
        self._kubectl(
            "create",
            "role",
            "sandbox-standins-reader",
            "-n",
            FAULTS_NAMESPACE,
            "--verb=get",
            "--resource=configmaps",
            f"--resource-name={FAULTS_NAME}",
        )
        self._kubectl(
            "create",
            "rolebinding",
            "sandbox-standins-reader",
            "-n",
            FAULTS_NAMESPACE,
            "--role=sandbox-standins-reader",
            "--group=system:serviceaccounts",
        )
        self.node = Node(
            self.root,
            self.host,
            self.hosting,
            self.registry,
            pause_image=f"{self.registry.address}/pause:{pinned('PAUSE_VERSION')}",
        )
        self.node.start()
        self._thread("log-keeper", LogKeeper(self.node, self.api, HOOK_IMAGE).run)
        self.loft.start()
        kubeflex_operator.install(
            self.hosting.dir / "admin.kubeconfig",
            self.registry.address,
            self.registry.ca_file,
            self.ca.cert_pem,
            self._kubectl_argv,
        )
        self._thread("nodeport-relays", self._relay_node_ports)
        self.clusters = Clusters(self.root, self.etcd, self.api, self.relays, self.log)
        self._thread("clusters", self.clusters.run)
        self.argocd = ArgoCD(self.root, self.hosting, self.api, self.registry, self.relays, self.log)
        self._thread("argocd", self.argocd.run)
        self._write_access()
        state = {
            "pid": os.getpid(),
            "hosting": self.hosting.url,
            "etcd": self.etcd.url,
            "registry": self.registry.address,
            "registry_ca": str(self.registry.ca_file),
            # Pods reach the registry at the node's address.
            "status_addon_chart": f"oci://{NODE_IP}:{self.registry.port}/{CHARTS_REPOSITORY}/{STATUS_ADDON_CHART.name}",
            "shell_image": next(
                f"{self.registry.address}/{ref}" for _, ref in pushed_images() if ref.startswith("sandbox/shell:")
            ),
            "netns": self.host.netns,
            "node_ip": NODE_IP,
            "kubeflex_chart": f"oci://{self.registry.address}/{kubeflex_operator.REPOSITORY}/kubeflex-operator",
            "kubeflex_version": kubeflex_operator.version(),
            "started_s": round(time.monotonic() - began, 1),
        }
        (self.root / "state.json").write_text(json.dumps(state, indent=2))
        self.log(f"sandbox: up in {state['started_s']}s: hosting {self.hosting.url}, registry {self.registry.address}")

    def _write_access(self) -> None:
        """The admin kubeconfig for the machine (127.0.0.1, through the relays)."""
        path = self.root / "kubeconfig"
        path.write_text(self.hosting.admin_kubeconfig())
        path.chmod(0o600)

    def stop(self) -> None:
        """Every part at once (one after the other, their grace periods added up to most of a test
        run's teardown), then etcd, which they all write to."""
        self.stop_event.set()
        parts = [
            part
            for part in (self.argocd, self.node, self.relays, self.kcm, self.clusters, self.hosting, self.registry, self.loft)
            if part is not None
        ]
        with ThreadPoolExecutor(max_workers=len(parts)) as pool:
            list(pool.map(lambda part: part.stop(), parts))
        if self.etcd.process:
            self.etcd.process.stop()


def self_check(root: Path) -> None:
    """A helm install with OpenAPI validation on, whose hook Job runs a pod on the node: a hand-made
    API server build can serve a broken OpenAPI document, and a node that cannot run pods fails
    every test later and less clearly."""
    current = state(root) or {}
    env = dict(
        os.environ,
        KUBECONFIG=str(root / "kubeconfig"),
        HELM_CACHE_HOME=str(root / "helm-cache"),
        HELM_CONFIG_HOME=str(root / "helm-config"),
        HELM_DATA_HOME=str(root / "helm-data"),
    )
    helm = tool("helm")
    for argv in (
        [
            helm,
            "install",
            "selfcheck",
            str(SELF_CHECK_CHART),
            "-n",
            "sandbox-selfcheck",
            "--create-namespace",
            "--wait",
            "--timeout",
            "180s",
            "--set",
            f"image={current.get('registry')}/{HOOK_IMAGE}",
        ],
        [helm, "uninstall", "selfcheck", "-n", "sandbox-selfcheck", "--wait"],
    ):
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=240, check=False)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise StartError(f"sandbox self-check `helm {argv[1]}` failed: {last}")


def state(root: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((root / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return data if pid_alive(int(data.get("pid", 0))) else None


def down(root: Path) -> None:
    """Stop the supervisor, then take back whatever the sandbox holds, whatever state it was left in."""
    pid_file = root / "supervisor.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text() or 0)
        if pid and pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
            end = time.monotonic() + 60
            while pid_alive(pid) and time.monotonic() < end:
                time.sleep(0.1)
    remove(root)


def remove(root: Path) -> None:
    Host(root).teardown()
    subprocess.run(["rm", "-rf", str(root)], check=False, capture_output=True)


def up(root: Path, lifeline: int | None = None, timeout: float = 300) -> dict[str, Any]:
    """Start the sandbox in the background (reusing one that is running) and self-check it.
    lifeline: the read end of a pipe whose write end the caller keeps; the sandbox ends when it closes."""
    running = state(root)
    if running:
        return running
    down(root)  # a stale or killed previous run must not break this one
    pushed_images()  # fail now, not after a minute of start-up, if `make images` was not run
    host = Host(root)
    (root / "logs").mkdir(parents=True)
    host.prepare()
    log = root / "logs" / "supervisor.log"
    machine_netns = os.open("/proc/self/ns/net", os.O_RDONLY)
    argv = [sys.executable, "-m", "tests.sandbox", "serve", "--dir", str(root), "--machine-netns-fd", str(machine_netns)]
    fds = [machine_netns]
    if lifeline is not None:
        argv += ["--lifeline-fd", str(lifeline)]
        fds.append(lifeline)
    try:
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                host.join_cgroup_argv(*host.in_netns(*argv)),
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                pass_fds=fds,
            )
    finally:
        os.close(machine_netns)
    (root / "supervisor.pid").write_text(str(proc.pid))
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        current = state(root)
        if current:
            self_check(root)
            return current
        if proc.poll() is not None:
            lines = log.read_text(errors="replace").strip().splitlines()
            errors = [line for line in lines if line.startswith("sandbox: error")]
            Host(root).teardown()  # the logs the error names stay
            raise StartError((errors or lines or [f"sandbox exited; log: {log}"])[-1].removeprefix("sandbox: error: "))
        time.sleep(0.2)
    Host(root).teardown()
    raise StartError(f"sandbox did not start within {timeout:.0f}s; log: {log}")


def _leave_sandbox_cgroup() -> None:
    """Teardown kills every process in the sandbox's cgroup: the one doing it must stand outside."""
    (UNIFIED / "cgroup.procs").write_text("0")


def serve(root: Path, machine_netns_fd: int, lifeline: int | None) -> int:
    sandbox = Supervisor(root, machine_netns_fd)
    stopping = threading.Event()
    orphaned = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    if lifeline is not None:

        def watch_lifeline() -> None:
            with contextlib.suppress(OSError):
                while os.read(lifeline, 1):
                    pass
            orphaned.set()
            stopping.set()

        threading.Thread(target=watch_lifeline, daemon=True, name="lifeline").start()
    try:
        sandbox.start()
    except (StartError, subprocess.CalledProcessError, OSError) as err:
        detail = err.stderr.decode(errors="replace").strip() if isinstance(err, subprocess.CalledProcessError) else ""
        print(f"sandbox: error: {err} {detail}".strip(), flush=True)
        sandbox.stop()
        return 1
    stopping.wait()
    sandbox.log("sandbox: stopping" + (" (the test session that started it is gone)" if orphaned.is_set() else ""))
    sandbox.stop()
    if orphaned.is_set():  # nobody will call down(): do its work
        _leave_sandbox_cgroup()
        remove(root)
    return 0
