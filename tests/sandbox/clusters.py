"""Clusters on demand, each a kube-apiserver of its own with no node (virtual.py), so its pods run on
the hosting cluster's node: workload execution clusters (WECs, where the klusterlet runs) and the
existing clusters an external ITS adopts. ConfigMap kube-system/sandbox-clusters lists them, one key
per cluster; for each the sandbox writes, once it serves, <root>/clusters/<name>.kubeconfig (the
machine reaches it through a relay; inside the sandbox's namespace the same address works) and
<name>-incluster.kubeconfig (its address from inside the hosting cluster's pods, as a bootstrap Secret
holds it)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .host import NODE_IP
from .kube import front_service, manifest, run_watch
from .ports import free_port
from .relay import Relays
from .servers import ApiServer, Etcd, kubeconfig
from .virtual import APISERVER_ARGS, VirtualCluster

CLUSTERS_NAMESPACE, CLUSTERS_NAME = "kube-system", "sandbox-clusters"


def kubeconfig_paths(root: Path, name: str) -> tuple[Path, Path]:
    """The cluster's kubeconfig for the machine, and the one for use inside the hosting cluster."""
    return root / "clusters" / f"{name}.kubeconfig", root / "clusters" / f"{name}-incluster.kubeconfig"


def apiserver_name(name: str) -> str:
    return f"cluster-{name}"


class Clusters:
    def __init__(self, root: Path, etcd: Etcd, hosting: client.ApiClient, relays: Relays, log: Callable[[str], None]) -> None:
        self.root, self.etcd, self.hosting, self.relays, self.log = root, etcd, hosting, relays, log
        self.core = client.CoreV1Api(hosting)
        self.running: dict[str, ApiServer | None] = {}  # None: starting
        self._lock = threading.Lock()

    def run(self, stop: threading.Event) -> None:
        with contextlib.suppress(ApiException):
            self.core.create_namespaced_config_map(CLUSTERS_NAMESPACE, manifest({"metadata": {"name": CLUSTERS_NAME}}))

        def list_fn(**kw: Any) -> Any:
            return self.core.list_namespaced_config_map(
                CLUSTERS_NAMESPACE, field_selector=f"metadata.name={CLUSTERS_NAME}", **kw
            )

        run_watch(self.hosting, list_fn, self._reconcile, stop, "clusters", self.log)

    def _reconcile(self, event: str, config_map: dict[str, Any]) -> None:
        wanted = set() if event == "DELETED" else set(config_map.get("data") or {})
        with self._lock:
            for name in sorted(wanted - set(self.running)):
                threading.Thread(target=self._start, args=(name,), daemon=True, name=f"cluster-{name}").start()
                self.running[name] = None
            for name in sorted(set(self.running) - wanted):
                server = self.running.pop(name)
                if server is not None:
                    server.destroy()
                for path in kubeconfig_paths(self.root, name):
                    path.unlink(missing_ok=True)
                with contextlib.suppress(ApiException):
                    self.core.delete_namespace(apiserver_name(name))
                self.log(f"clusters: {name} removed")

    def _start(self, name: str) -> None:
        namespace = apiserver_name(name)
        try:
            with contextlib.suppress(ApiException):
                self.core.create_namespace(manifest({"metadata": {"name": namespace}}))
            port = free_port()
            service_ip = front_service(self.hosting, namespace, "apiserver", port)
            server = ApiServer(
                apiserver_name(name),
                self.root,
                self.etcd,
                port=port,
                extra_args=APISERVER_ARGS,
                hosts=("apiserver", f"apiserver.{namespace}", f"apiserver.{namespace}.svc", service_ip),
            )
            server.start()
            self.relays.add(port)
            VirtualCluster(server, self.hosting, namespace, "cluster", service_ip, self.log).start()
            with self._lock:
                self.running[name] = server
            assert server.admin is not None
            machine, incluster = kubeconfig_paths(self.root, name)
            machine.parent.mkdir(parents=True, exist_ok=True)
            texts = {
                incluster: kubeconfig(f"https://{NODE_IP}:{port}", server.ca.cert_pem, name, client=server.admin),
                machine: server.admin_kubeconfig(),
            }  # the machine's last: its presence says both are there
            for path, text in texts.items():
                path.write_text(text)
                path.chmod(0o600)
            self.log(f"clusters: {name} serving at {server.url}")
        except Exception as err:
            self.log(f"clusters: {name} did not start: {type(err).__name__}: {err}")

    def stop(self) -> None:
        with self._lock:
            servers = [server for server in self.running.values() if server is not None]
        for server in servers:
            server.stop()
