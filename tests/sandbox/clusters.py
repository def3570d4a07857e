"""Workload execution clusters on demand. ConfigMap kube-system/sandbox-wecs lists them, one key per
WEC; each is a kube-apiserver of its own with no node (virtual.py), so its pods (the klusterlet)
run on the hosting cluster's node. For each, the sandbox writes <root>/wecs/<name>.kubeconfig (the
machine reaches it through a relay; inside the sandbox's namespace the same address works) once
it serves."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .kube import front_service, run_watch
from .relay import Relays
from .servers import ApiServer, Etcd, free_port
from .virtual import APISERVER_ARGS, VirtualCluster

WECS_NAMESPACE, WECS_NAME = "kube-system", "sandbox-wecs"


class Wecs:
    def __init__(self, root: Path, etcd: Etcd, hosting: client.ApiClient, relays: Relays,
                 log: Callable[[str], None]) -> None:
        self.root, self.etcd, self.hosting, self.relays, self.log = root, etcd, hosting, relays, log
        self.core = client.CoreV1Api(hosting)
        self.running: dict[str, ApiServer] = {}
        self._lock = threading.Lock()

    def run(self, stop: threading.Event) -> None:
        with contextlib.suppress(ApiException):
            self.core.create_namespaced_config_map(WECS_NAMESPACE, {"metadata": {"name": WECS_NAME}})

        def list_fn(**kw: Any) -> Any:
            return self.core.list_namespaced_config_map(WECS_NAMESPACE, field_selector=f"metadata.name={WECS_NAME}",
                                                        **kw)

        run_watch(self.hosting, list_fn, self._reconcile, stop, "wecs", self.log)

    def _reconcile(self, event: str, config_map: dict[str, Any]) -> None:
        wanted = set() if event == "DELETED" else set(config_map.get("data") or {})
        with self._lock:
            for name in sorted(wanted - set(self.running)):
                threading.Thread(target=self._start, args=(name,), daemon=True, name=f"wec-{name}").start()
                self.running[name] = None  # type: ignore[assignment]  # starting
            for name in sorted(set(self.running) - wanted):
                server = self.running.pop(name)
                if server is not None:
                    server.destroy()
                (self.root / "wecs" / f"{name}.kubeconfig").unlink(missing_ok=True)
                with contextlib.suppress(ApiException):
                    self.core.delete_namespace(f"wec-{name}")
                self.log(f"wecs: {name} removed")

    def _start(self, name: str) -> None:
        namespace = f"wec-{name}"
        try:
            with contextlib.suppress(ApiException):
                self.core.create_namespace({"metadata": {"name": namespace}})
            port = free_port()
            service_ip = front_service(self.hosting, namespace, "apiserver", port)
            server = ApiServer(f"wec-{name}", self.root, self.etcd, port=port, extra_args=APISERVER_ARGS,
                               hosts=("apiserver", f"apiserver.{namespace}", f"apiserver.{namespace}.svc", service_ip))
            server.start()
            self.relays.add(port)
            VirtualCluster(server, self.hosting, namespace, "wec", service_ip, self.log).start()
            with self._lock:
                self.running[name] = server
            path = self.root / "wecs" / f"{name}.kubeconfig"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(server.admin_kubeconfig())
            path.chmod(0o600)
            self.log(f"wecs: {name} serving at {server.url}")
        except Exception as err:
            self.log(f"wecs: {name} did not start: {type(err).__name__}: {err}")
