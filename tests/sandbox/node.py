"""The real node of the hosting cluster, inside the sandbox's network namespace: containerd with runc
and the CNI bridge, the kubelet, kube-scheduler, kube-proxy (iptables) and CoreDNS as cluster DNS;
and the registry the node pulls every image from (TLS, the sandbox's own CA)."""

from __future__ import annotations

import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from . import loft
from .certs import CertificateAuthority
from .host import DNS_SERVICE_IP, NODE_IP, POD_CIDR, Host
from .kube import api_client, or_none, run_watch
from .ports import free_port
from .servers import ApiServer, Process, StartError, kubeconfig, tool, wait_http

NODE_NAME = "ks-its-node"
CNI_PLUGINS = Path("/usr/lib/cni")
# Registries whose images the sandbox serves under their upstream names (ci/images.sh pushes
# <host>/<path>:<tag>): KubeFlex's, its chart's and the vcluster chart's.
MIRRORED_HOSTS = ("ghcr.io", "quay.io", "docker.io")


def write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


@dataclass
class Registry:
    """Debian's docker-registry (distribution 2.8) over TLS on the node's address and loopback."""

    root: Path
    ca: CertificateAuthority
    storage: Path
    port: int = 0
    process: Process | None = None

    @property
    def address(self) -> str:
        """How the node and the machine name it (the machine reaches it through a relay on the same port)."""
        return f"127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.root / "registry" / "ca" / "ca.crt"

    def start(self, timeout: float = 30) -> None:
        self.port = self.port or free_port()
        d = self.root / "registry"
        serving = self.ca.issue("registry", server=True, hosts=(NODE_IP,))
        write(d / "tls.crt", serving.cert_pem.decode())
        write(d / "tls.key", serving.key_pem.decode(), 0o600)
        write(self.ca_file, self.ca.cert_pem.decode())
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.storage)}, "delete": {"enabled": True}},
            "http": {"addr": f"0.0.0.0:{self.port}", "tls": {"certificate": str(d / "tls.crt"), "key": str(d / "tls.key")}},
        }
        write(d / "config.yml", yaml.safe_dump(config))
        self.process = Process(
            "registry", ["docker-registry", "serve", str(d / "config.yml")], self.root / "logs" / "registry.log"
        )
        self.process.start()
        context = ssl.create_default_context(cafile=str(self.ca_file))
        wait_http(self.process, f"https://{self.address}/v2/", context, timeout)

    def stop(self) -> None:
        if self.process:
            self.process.stop()


@dataclass
class Node:
    """containerd + kubelet + kube-proxy + CoreDNS for the hosting API server, plus kube-scheduler."""

    root: Path
    host: Host
    hosting: ApiServer
    registry: Registry
    pause_image: str
    processes: list[Process] = field(default_factory=list)

    @property
    def dir(self) -> Path:
        return self.root / "node"

    @property
    def containerd_socket(self) -> Path:
        return self.dir / "containerd" / "containerd.sock"

    def _identity(self, name: str, org: str | None = None) -> Path:
        """A kubeconfig of the hosting API server with a client certificate for `name`."""
        pair = self.hosting.ca.issue(name, org=org)
        return write(
            self.dir / "kubeconfigs" / f"{name.replace(':', '-')}.kubeconfig",
            kubeconfig(self.hosting.url, self.hosting.ca.cert_pem, name, client=pair),
            0o600,
        )

    def _start(self, name: str, argv: list[str]) -> Process:
        process = Process(name, argv, self.root / "logs" / f"{name}.log")
        process.start()
        self.processes.append(process)
        return process

    def start(self) -> None:
        self._containerd()
        self._kubelet()
        self._scheduler()
        self._wait_node_ready()
        self._kube_proxy()
        self._coredns()

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    # --- containerd ------------------------------------------------------------------------------

    def _containerd(self) -> None:
        d = self.dir / "containerd"
        write(
            d / "certs.d" / self.registry.address / "hosts.toml",
            f'server = "https://{self.registry.address}"\n'
            f'ca = "{self.registry.ca_file}"\n\n'
            f'[host."https://{self.registry.address}"]\n'
            f'  capabilities = ["pull", "resolve"]\n'
            f'  ca = "{self.registry.ca_file}"\n',
        )
        # Images named by upstream's hosts (KubeFlex's, and those it runs) are pulled from the
        # registry's <host>/ repositories, as from a pull-through mirror.
        for upstream in MIRRORED_HOSTS:
            write(
                d / "certs.d" / upstream / "hosts.toml",
                f'server = "https://{upstream}"\n\n'
                f'[host."https://{self.registry.address}/v2/{upstream}"]\n'
                f'  capabilities = ["pull", "resolve"]\n'
                f'  ca = "{self.registry.ca_file}"\n'
                f"  override_path = true\n",
            )
        cni = write(
            self.dir / "cni" / "net.d" / "10-sandbox.conflist",
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": "ks-its-sandbox",
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": "cni0",
                            "isGateway": True,
                            "isDefaultGateway": False,
                            "ipMasq": False,
                            "hairpinMode": True,
                            "ipam": {
                                "type": "host-local",
                                "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_IP}]],
                                "routes": [{"dst": "0.0.0.0/0"}],
                                "dataDir": str(self.dir / "cni" / "networks"),
                            },
                        }
                    ],
                },
                indent=2,
            ),
        )
        config = f"""version = 2
root = "{d / "root"}"
state = "{d / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{self.containerd_socket}"
[ttrpc]
  address = "{self.containerd_socket}.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{self.pause_image}"
  # No CAP_SYS_RESOURCE here: containers may not lower their OOM score below the runtime's.
  restrict_oom_score_adj = true
  # Pod network namespaces under this sandbox's state, not in the machine's /run/netns.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_PLUGINS}"
    conf_dir = "{cni.parent}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{d / "certs.d"}"
"""
        path = write(d / "config.toml", config)
        process = self._start("containerd", ["containerd", "--config", str(path)])
        end = time.monotonic() + 30
        while not self.containerd_socket.exists():
            if not process.alive() or time.monotonic() > end:
                raise process.fail("did not open its socket")
            time.sleep(0.1)

    # --- kubelet ---------------------------------------------------------------------------------

    def _kubelet(self) -> None:
        d = self.dir / "kubelet"
        write(d / "ca.crt", self.hosting.ca.cert_pem.decode())
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # This machine's cgroups are v1 with cgroup2 beside them (hybrid); crun refuses it, runc works.
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": self.host.kubelet_cgroup_root,
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(d / "ca.crt")},
            },
            "authorization": {"mode": "Webhook"},
            "clusterDomain": "cluster.local",
            "clusterDNS": [DNS_SERVICE_IP],
            "resolvConf": "",  # pods get cluster DNS only; nothing outside resolves or is reachable
            # Images come from the sandbox's registry with no pull secret; verifying cached
            # credentials would refuse an image this node pulled before.
            "imagePullCredentialsVerificationPolicy": "NeverVerify",
            "serializeImagePulls": False,
            "maxParallelImagePulls": 3,
            "failSwapOn": False,
            "maxPods": 250,
            "oomScoreAdj": 0,  # no CAP_SYS_RESOURCE to lower it
            "protectKernelDefaults": False,  # it sets a few host sysctls: Host saves and restores them
            # A sandbox on a shared disk: do not evict pods for the machine's disk or memory use.
            "evictionHard": {
                "memory.available": "0%",
                "nodefs.available": "0%",
                "nodefs.inodesFree": "0%",
                "imagefs.available": "0%",
                "imagefs.inodesFree": "0%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "podLogsDir": str(d / "pod-logs"),
            # A vcluster space's audit log is its container's output (tests read it whole): no rotation
            # within a test session.
            "containerLogMaxSize": "500Mi",
            "healthzPort": free_port(),
            "port": free_port(),
            "readOnlyPort": 0,
            "staticPodPath": "",
            "volumePluginDir": str(d / "volume-plugins"),
            "shutdownGracePeriod": "0s",
        }
        path = write(d / "config.yaml", yaml.safe_dump(config))
        identity = self._identity(f"system:node:{NODE_NAME}", org="system:nodes")
        self._start(
            "kubelet",
            [
                tool("kubelet"),
                f"--config={path}",
                f"--kubeconfig={identity}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={NODE_IP}",
                f"--root-dir={d / 'root'}",
                f"--cert-dir={d / 'pki'}",
                "--v=1",
            ],
        )

    def _scheduler(self) -> None:
        identity = self._identity("system:kube-scheduler")
        self._start(
            "kube-scheduler",
            [
                tool("kube-scheduler"),
                f"--kubeconfig={identity}",
                f"--authentication-kubeconfig={identity}",
                f"--authorization-kubeconfig={identity}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
            ],
        )

    def _wait_node_ready(self, timeout: float = 120) -> None:
        from kubernetes import client

        core = client.CoreV1Api(api_client(self.hosting.admin_kubeconfig()))
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for process in self.processes:
                if not process.alive():
                    raise process.fail("exited while the node started")
            node = or_none(core.read_node, NODE_NAME)
            if node and any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or []):
                return
            time.sleep(0.5)
        raise StartError(
            f"node {NODE_NAME} did not become Ready within {timeout:.0f}s; log: {self.root / 'logs' / 'kubelet.log'}"
        )

    # --- Service routing and cluster DNS ---------------------------------------------------------

    def _kube_proxy(self) -> None:
        identity = self._identity("system:kube-proxy")
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "iptables",
            "clientConnection": {"kubeconfig": str(identity)},
            "hostnameOverride": NODE_NAME,
            "clusterCIDR": POD_CIDR,
            "iptables": {"masqueradeAll": False, "localhostNodePorts": False},
            # nf_conntrack_max is read-only in a network namespace: leave conntrack as it is.
            "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
            "oomScoreAdj": 0,
            "healthzBindAddress": f"127.0.0.1:{free_port()}",
            "metricsBindAddress": f"127.0.0.1:{free_port()}",
        }
        path = write(self.dir / "kube-proxy" / "config.yaml", yaml.safe_dump(config))
        self._start("kube-proxy", [tool("kube-proxy"), f"--config={path}"])

    def _coredns(self) -> None:
        """CoreDNS as a process on the node's address, behind Service kube-dns (see cluster-dns.yaml).
        Names outside the cluster get NXDOMAIN, but for the chart repository KubeFlex uses (loft.py)."""
        identity = self._identity("system:coredns")
        health, ready = free_port(), free_port()
        corefile = f"""cluster.local:53 {{
    bind {NODE_IP}
    errors
    health 127.0.0.1:{health}
    ready 127.0.0.1:{ready}
    kubernetes cluster.local in-addr.arpa {{
        kubeconfig {identity}
        pods insecure
        ttl 5
    }}
    cache 5
}}
.:53 {{
    bind {NODE_IP}
    errors
    template IN A {loft.HOST} {{
        answer "{{{{ .Name }}}} 60 IN A {NODE_IP}"
    }}
    template IN AAAA {loft.HOST} {{
        rcode NOERROR
    }}
    template ANY ANY {{
        rcode NXDOMAIN
    }}
}}
"""
        path = write(self.dir / "coredns" / "Corefile", corefile)
        process = self._start("coredns", [tool("coredns"), "-conf", str(path)])
        wait_http(process, f"http://127.0.0.1:{ready}/ready", None, 60)


class LogKeeper:
    """Keeps a copy of every container log of the node once its containers end: Helm and the tests
    delete finished hook pods, and the kubelet their logs with them, while the secret scan reads every
    hook log of a session. Pods of the hook image go to logs/pods/<namespace>_<pod>.log (what the scan
    reads: our code), the others (OCM, klusterlets, add-on) to logs/workloads/ for diagnosis."""

    def __init__(self, node: Node, api: Any, hook_image: str) -> None:
        self.pod_logs = node.dir / "kubelet" / "pod-logs"
        self.hooks = node.root / "logs" / "pods"
        self.workloads = node.root / "logs" / "workloads"
        self.hook_image = hook_image
        self.api = api

    def run(self, stop: threading.Event) -> None:
        self.hooks.mkdir(parents=True, exist_ok=True)
        self.workloads.mkdir(parents=True, exist_ok=True)
        run_watch(
            self.api,
            client.CoreV1Api(self.api).list_pod_for_all_namespaces,
            self._handle,
            stop,
            "log-keeper",
            lambda message: None,
        )

    def _handle(self, event: str, pod: dict[str, Any]) -> None:
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        if event != "DELETED" and not any("terminated" in (s.get("state") or {}) for s in statuses):
            return
        meta = pod["metadata"]
        directory = self.pod_logs / f"{meta['namespace']}_{meta['name']}_{meta['uid']}"
        text = "".join(cri_log(path) for path in sorted(directory.glob("*/*.log")))
        if text:
            images = [container.get("image", "") for container in (pod.get("spec") or {}).get("containers") or []]
            out = self.hooks if any(image.endswith(self.hook_image) for image in images) else self.workloads
            (out / f"{meta['namespace']}_{meta['name']}.log").write_text(text)


def cri_log(path: Path) -> str:
    """A CRI log file (`<time> <stream> <F|P> <text>` per line) as the container wrote it."""
    out = []
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4:
            out.append(parts[3] + ("\n" if parts[2] == "F" else ""))
    return "".join(out)
