"""The `syncer` container of the stand-in vcluster chart (tests/charts/vcluster), in the image the
sandbox builds as ghcr.io/loft-sh/vcluster:0.16.4: what vcluster 0.16's syncer does that KubeFlex
v0.9.3 and the space's users rely on.

- waits for the space's API server (container `vcluster`, the same pod, 127.0.0.1:8443);
- writes Secret vc-vcluster, key `config`: the space's admin kubeconfig with the server of
  --out-kube-config-server, as vcluster does at each start (KubeFlex copies it into `config-incluster`);
- serves /readyz on :8090 once the space serves (the StatefulSet's readiness, which KubeFlex's Ready
  follows);
- runs the space's pods on the hosting node (syncer.py), beside itself in the pod's namespace.

Faults, for tests that need a space that is late or never ready, as a broken vcluster would be:
ConfigMap kube-system/sandbox-standins, key = the ControlPlane's name (the namespace without
`-system`) or `default` (every space), value = JSON with start_delay_s (readiness that much after the
space serves) and never_ready.

Run as `python3 -m tests.sandbox.vcluster ARGS` (upstream's syncer flags; unknown ones are ignored).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from .kube import api_client, manifest, or_none
from .syncer import PodSyncer

FAULTS_NAMESPACE, FAULTS_NAME = "kube-system", "sandbox-standins"
KUBECONFIG_SECRET = "vc-vcluster"  # noqa: S105 (a name, not a password)
READY_PORT = 8090


def log(message: str) -> None:
    print(time.strftime("%H:%M:%S ") + message, file=sys.stderr, flush=True)


def faults(core: client.CoreV1Api, controlplane: str) -> dict[str, Any]:
    """The faults set for this space now (none when the ConfigMap or the key is missing)."""
    try:
        found = or_none(core.read_namespaced_config_map, FAULTS_NAME, FAULTS_NAMESPACE)
    except ApiException:
        return {}
    data = (found.data if found else None) or {}
    merged: dict[str, Any] = json.loads(data.get("default", "{}"))
    merged.update(json.loads(data.get(controlplane, "{}")))
    return merged


def admin_kubeconfig(server: str, ca_pem: str, token: str, context: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)}}],
            "users": [{"name": context, "user": {"token": token}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
            "current-context": context,
        },
        sort_keys=False,
    )


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def wait_serving(virtual: client.ApiClient) -> None:
    """Until the space's API server answers /readyz (it restarts with its container)."""
    while True:
        try:
            params = virtual.param_serialize(method="GET", resource_path="/readyz", auth_settings=["BearerToken"])
            if virtual.call_api(*params, _request_timeout=5).status == 200:
                return
        except Exception:  # noqa: S110 (not serving yet: any error means wait)
            pass
        time.sleep(0.5)


def write_secret(core: client.CoreV1Api, namespace: str, kubeconfig: str) -> None:
    body = {
        "metadata": {"name": KUBECONFIG_SECRET, "namespace": namespace},
        "type": "Opaque",
        "data": {"config": _b64(kubeconfig)},
    }
    try:
        core.create_namespaced_secret(namespace, manifest(body))
    except ApiException as err:
        if err.status != 409:
            raise
        core.patch_namespaced_secret(
            KUBECONFIG_SECRET, namespace, {"data": body["data"]}, _content_type="application/merge-patch+json"
        )


class Readiness:
    """/readyz: 200 once the space serves and no fault holds it back."""

    def __init__(self, core: client.CoreV1Api, controlplane: str) -> None:
        self.core = core
        self.controlplane = controlplane
        self.serving_since: float | None = None

    def ready(self) -> bool:
        if self.serving_since is None:
            return False
        now = faults(self.core, self.controlplane)
        if now.get("never_ready"):
            return False
        return time.monotonic() - self.serving_since >= float(now.get("start_delay_s", 0))

    def serve(self) -> None:
        readiness = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                ok = self.path == "/readyz" and readiness.ready()
                self.send_response(200 if ok else 503)
                self.end_headers()
                self.wfile.write(b"ok" if ok else b"not ready")

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the kubelet probes every 2 s

        server = ThreadingHTTPServer(("0.0.0.0", READY_PORT), Handler)
        threading.Thread(target=server.serve_forever, daemon=True, name="readyz").start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="syncer")
    parser.add_argument("--name", required=True)
    parser.add_argument("--kube-config", required=True, help="the space's admin kubeconfig (the pod's own API server)")
    parser.add_argument("--kube-config-context-name", default="my-vcluster")
    parser.add_argument("--out-kube-config-server", default="")
    parser.add_argument("--tls-san", action="append", default=[])
    args, _ = parser.parse_known_args(argv)
    namespace = os.environ["POD_NAMESPACE"]
    controlplane = namespace.removesuffix("-system")
    config.load_incluster_config()
    hosting = client.ApiClient()
    core = client.CoreV1Api(hosting)
    readiness = Readiness(core, controlplane)
    readiness.serve()

    local = yaml.safe_load(Path(args.kube_config).read_text())
    ca_pem = Path(local["clusters"][0]["cluster"]["certificate-authority"]).read_text()
    token = local["users"][0]["user"]["token"]
    virtual = api_client(admin_kubeconfig("https://127.0.0.1:8443", ca_pem, token, args.kube_config_context_name))
    log("syncer: waiting for the space's API server")
    wait_serving(virtual)
    server = args.out_kube_config_server or f"https://{args.name}.{namespace}"
    write_secret(core, namespace, admin_kubeconfig(server, ca_pem, token, args.kube_config_context_name))
    readiness.serving_since = time.monotonic()
    log(f"syncer: space serving; Secret {KUBECONFIG_SECRET} written (server {server})")

    service = core.read_namespaced_service(args.name, namespace)
    syncer = PodSyncer(virtual, ca_pem, hosting, namespace, args.name, str(service.spec.cluster_ip), log)
    syncer.run(threading.Event())
    return 0


if __name__ == "__main__":
    sys.exit(main())
