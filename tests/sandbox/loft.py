"""https://charts.loft.sh inside the sandbox: the classic Helm repository KubeFlex v0.9.3 installs its
vcluster spaces from (hard-coded in its pkg/reconcilers/vcluster/chart.go), serving the stand-in
chart tests/charts/vcluster as `vcluster` 0.16.4.

Cluster DNS answers charts.loft.sh with the node's address and never forwards it (node.py); this
server listens there on 443 with a certificate of the sandbox's CA, which the KubeFlex operator pod
trusts (kubeflex_operator.py). The machine's own charts.loft.sh is never asked: the sandbox's network
namespace has no route out.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import tempfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .certs import CertificateAuthority
from .host import NODE_IP
from .servers import REPO, tool

HOST = "charts.loft.sh"
CHART = REPO / "tests" / "charts" / "vcluster"


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class ChartRepository:
    def __init__(self, root: Path, ca: CertificateAuthority) -> None:
        self.dir = root / "loft"
        self.ca = ca
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        charts = self.dir / "www" / "charts"
        charts.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="loft-") as home:
            env = {**os.environ, **{f"HELM_{kind}_HOME": f"{home}/{kind.lower()}" for kind in ("CACHE", "CONFIG", "DATA")}}
            helm = tool("helm")
            subprocess.run(
                [helm, "package", str(CHART), "-d", str(charts)], env=env, check=True, capture_output=True, timeout=60
            )
            # The index at the repository's root, the archives under charts/, as upstream lays them out.
            subprocess.run(
                [helm, "repo", "index", str(charts.parent), "--url", f"https://{HOST}"],
                env=env,
                check=True,
                capture_output=True,
                timeout=60,
            )
        serving = self.ca.issue(HOST, server=True, hosts=(HOST,))
        (self.dir / "tls.crt").write_bytes(serving.cert_pem)
        (self.dir / "tls.key").write_bytes(serving.key_pem)
        (self.dir / "tls.key").chmod(0o600)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.dir / "tls.crt", self.dir / "tls.key")
        self.server = ThreadingHTTPServer((NODE_IP, 443), partial(Quiet, directory=str(charts.parent)))
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True, name="charts.loft.sh").start()

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
