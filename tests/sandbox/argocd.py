"""Argo CD on demand: its repo-server and application controller (the multi-call binary ci/tools.sh
builds from github.com/argoproj/argo-cd/v3) and Debian's redis, as processes in the sandbox's network
namespace against the hosting cluster, with the CRDs and configuration objects of Argo CD's module,
as its install manifests make them. Argo CD's UI, API server and Dex are not run: the tests read
what they would show (the Application, the controller's resource tree in redis).

ConfigMap kube-system/sandbox-argocd asks for it; deleting the ConfigMap stops it. Once it runs,
<root>/argocd.json says where redis is (relayed to the machine's loopback on the same port)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .kube import manifest, run_watch
from .node import Registry, write
from .ports import free_port
from .relay import Relays
from .servers import ApiServer, Process, StartError, module_dir, pinned, tool

ARGOCD_NAMESPACE, ARGOCD_NAME = "kube-system", "sandbox-argocd"
NAMESPACE = "argocd"
CONFIG_OBJECTS = (
    "argocd-cm",
    "argocd-cmd-params-cm",
    "argocd-gpg-keys-cm",
    "argocd-rbac-cm",
    "argocd-secret",
    "argocd-ssh-known-hosts-cm",
    "argocd-tls-certs-cm",
)
# Where the application controller caches an Application's resource tree in redis (Argo CD's cache
# version 1.8.3; plain JSON with --redis-compress none): what Argo CD's UI shows of each resource.
RESOURCE_TREE_KEY = "app|resources-tree|{app}|1.8.3"
# The repository path the Argo CD tests publish the chart to (`make release` pushes to <registry>/charts).
CHARTS_PATH = "charts"


class ArgoCD:
    def __init__(
        self,
        root: Path,
        hosting: ApiServer,
        api: client.ApiClient,
        registry: Registry,
        relays: Relays,
        log: Callable[[str], None],
    ) -> None:
        self.root, self.hosting, self.api, self.registry, self.relays, self.log = root, hosting, api, registry, relays, log
        self.processes: list[Process] = []
        self._lock = threading.Lock()

    @property
    def dir(self) -> Path:
        return self.root / "argocd"

    @property
    def state_file(self) -> Path:
        return self.root / "argocd.json"

    def run(self, stop: threading.Event) -> None:
        core = client.CoreV1Api(self.api)

        def list_fn(**kw: Any) -> Any:
            return core.list_namespaced_config_map(ARGOCD_NAMESPACE, field_selector=f"metadata.name={ARGOCD_NAME}", **kw)

        run_watch(self.api, list_fn, self._reconcile, stop, "argocd", self.log)

    def _reconcile(self, event: str, _: dict[str, Any]) -> None:
        with self._lock:
            if event == "DELETED":
                self.stop()
            elif not self.processes:
                try:
                    self._start()
                except (StartError, subprocess.CalledProcessError, ApiException, OSError) as err:
                    detail = err.stderr.decode(errors="replace") if isinstance(err, subprocess.CalledProcessError) else ""
                    self.log(f"argocd: did not start: {err} {detail}".strip())
                    self.stop()

    def _kubectl(self, *args: str, stdin: str | None = None) -> None:
        subprocess.run(
            [tool("kubectl"), "--kubeconfig", str(self.hosting.dir / "admin.kubeconfig"), *args],
            input=stdin.encode() if stdin else None,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def _configure(self, module: Path) -> None:
        """What Argo CD's install manifests create and argocd-server would add: the CRDs, the
        configuration objects, the server's secret key (without it the controller never syncs), the
        `default` AppProject, and the sandbox's registry as a Helm OCI repository."""
        crds = module / "manifests" / "crds"
        self._kubectl(
            "apply", "--server-side", "-f", str(crds / "application-crd.yaml"), "-f", str(crds / "appproject-crd.yaml")
        )
        end = time.monotonic() + 60
        while True:  # kubectl wait fails at once on a CRD that has no conditions yet
            try:
                self._kubectl(
                    "wait",
                    "--for=condition=Established",
                    "crd/applications.argoproj.io",
                    "crd/appprojects.argoproj.io",
                    "--timeout=30s",
                )
                break
            except subprocess.CalledProcessError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.5)
        core = client.CoreV1Api(self.api)
        with contextlib.suppress(ApiException):
            core.create_namespace(manifest({"metadata": {"name": NAMESPACE}}))
        config = module / "manifests" / "base" / "config"
        files = [arg for name in CONFIG_OBJECTS for arg in ("-f", str(config / f"{name}.yaml"))]
        self._kubectl("apply", "--server-side", "-n", NAMESPACE, *files)
        key = base64.b64encode(secrets.token_bytes(32)).decode()
        core.patch_namespaced_secret(
            "argocd-secret", NAMESPACE, {"data": {"server.secretkey": base64.b64encode(key.encode()).decode()}}
        )
        project = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AppProject",
            "metadata": {"name": "default", "namespace": NAMESPACE},
            "spec": {
                "sourceRepos": ["*"],
                "destinations": [{"server": "*", "namespace": "*"}],
                "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
            },
        }
        repository = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "sandbox-registry",
                "namespace": NAMESPACE,
                "labels": {"argocd.argoproj.io/secret-type": "repository"},
            },
            "stringData": {
                "type": "helm",
                "name": "sandbox-registry",
                "enableOCI": "true",
                "url": f"{self.registry.address}/{CHARTS_PATH}",
            },
        }
        self._kubectl(
            "apply",
            "--server-side",
            "-f",
            "-",
            stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [project, repository]}),
        )

    def _start(self) -> None:
        began = time.monotonic()
        module = module_dir("github.com/argoproj/argo-cd/v3", pinned("ARGOCD_VERSION"))
        binary = tool("argocd")
        self._configure(module)
        d = self.dir
        # Argo CD verifies the registry's certificate with the CA it holds for that host (what the
        # argocd-tls-certs-cm ConfigMap mounts in a real install): TLS, not --insecure-skip-tls-verify.
        write(d / "tls" / self.registry.address.rsplit(":", 1)[0], self.registry.ca_file.read_text())
        (d / "ssh").mkdir(parents=True, exist_ok=True)
        (d / "tmp").mkdir(parents=True, exist_ok=True)
        redis_port, repo_port = free_port(), free_port()
        redis = f"127.0.0.1:{redis_port}"
        env = {
            "PATH": f"{Path(binary).parent}:{os.environ['PATH']}",
            "HOME": str(d),
            "TMPDIR": str(d / "tmp"),
            "KUBECONFIG": str(self.hosting.dir / "admin.kubeconfig"),
            # https://kubernetes.default.svc (the in-cluster destination) is that kubeconfig's server.
            "ARGOCD_FAKE_IN_CLUSTER": "true",
            "ARGOCD_GPG_ENABLED": "false",
            "ARGOCD_TLS_DATA_PATH": str(d / "tls"),
            "ARGOCD_SSH_DATA_PATH": str(d / "ssh"),
        }
        logs = self.root / "logs"
        self._process(
            "redis",
            [
                "redis-server",
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(d),
            ],
            logs / "argocd-redis.log",
            env,
        )
        self._process(
            "argocd-repo-server",
            [
                binary,
                "--address",
                "127.0.0.1",
                "--port",
                str(repo_port),
                "--metrics-address",
                "127.0.0.1",
                "--metrics-port",
                str(free_port()),
                "--redis",
                redis,
                "--disable-tls",
                "--loglevel",
                "info",
            ],
            logs / "argocd-repo-server.log",
            env,
        )
        self._process(
            "argocd-application-controller",
            [
                binary,
                "--namespace",
                NAMESPACE,
                "--redis",
                redis,
                "--repo-server",
                f"127.0.0.1:{repo_port}",
                "--repo-server-plaintext",
                "--metrics-port",
                str(free_port()),
                "--loglevel",
                "info",
                # Plain JSON in redis, so that a test reads the resource tree Argo CD's UI shows.
                "--redis-compress",
                "none",
                # Refresh often, so a test sees a change without waiting the default 3 minutes.
                "--app-resync",
                "20",
            ],
            logs / "argocd-application-controller.log",
            env,
        )
        self.relays.add(redis_port)
        self._wait_listening(redis_port, "redis")
        self._wait_listening(repo_port, "argocd-repo-server")
        self.state_file.write_text(
            json.dumps({"redis": redis, "namespace": NAMESPACE, "repository": f"{self.registry.address}/{CHARTS_PATH}"})
        )
        self.log(f"argocd: up in {time.monotonic() - began:.1f}s (redis {redis})")

    def _process(self, name: str, argv: list[str], log: Path, env: dict[str, str]) -> None:
        """Start `name`; the Argo CD binary acts as the component ARGOCD_BINARY_NAME names."""
        process = Process(name, argv, log, env={**os.environ, **env, "ARGOCD_BINARY_NAME": name})
        process.start()
        self.processes.append(process)

    def _wait_listening(self, port: int, name: str, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for process in self.processes:
                if not process.alive():
                    raise process.fail("exited during start-up")
            with socket.socket() as sock, contextlib.suppress(OSError):
                sock.settimeout(1)
                sock.connect(("127.0.0.1", port))
                return
            time.sleep(0.2)
        raise StartError(f"{name} did not listen on {port} within {timeout:.0f}s")

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        self.state_file.unlink(missing_ok=True)
