"""Real etcd, kube-apiserver and kube-controller-manager processes in the sandbox's network namespace."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .certs import CertificateAuthority, KeyPair, service_account_keys
from .host import NODE_IP
from .ports import free_port

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".cache" / "bin"

AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
"""


class StartError(RuntimeError):
    """A server did not start; str() is one line naming it and its log."""


def module_dir(module: str, version: str) -> Path:
    """A Go module's source as downloaded by ci/tools.sh."""
    path = REPO / ".cache" / "go" / "mod" / f"{module}@{version}"
    if not path.is_dir():
        raise StartError(f"{module}@{version} is not downloaded: run `make tools` (expected {path})")
    return path


def pinned(name: str) -> str:
    for line in (REPO / "ci" / "versions.env").read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1].strip()
    raise KeyError(name)


def with_overrides(argv: list[str], overrides: tuple[str, ...]) -> list[str]:
    """argv with each --flag=value of overrides replacing the same flag (list flags would append)."""
    flags = {override.split("=", 1)[0] for override in overrides}
    return [arg for arg in argv if arg.split("=", 1)[0] not in flags] + list(overrides)


def yaml_value(path: Path, key: str) -> str:
    return str(yaml.safe_load(path.read_text())[key])


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        raise StartError(f"{name} is not built: run `make tools` (expected {path})")
    return str(path)


def kubeconfig(server: str, ca_pem: bytes, name: str, client: KeyPair | None = None, token: str | None = None) -> str:
    user: dict[str, str] = {}
    if client is not None:
        user["client-certificate-data"] = base64.b64encode(client.cert_pem).decode()
        user["client-key-data"] = base64.b64encode(client.key_pem).decode()
    if token is not None:
        user["token"] = token
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": name,
        "clusters": [
            {"name": name, "cluster": {"server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()}}
        ],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
    }
    return str(yaml.safe_dump(document, sort_keys=False))


@dataclass
class Process:
    name: str
    argv: list[str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    # The environment of the process; None: the supervisor's.
    env: dict[str, str] | None = None

    def start(self, pass_fds: tuple[int, ...] = ()) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, pass_fds=pass_fds, env=self.env
            )

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def pid(self) -> int:
        return self.popen.pid if self.popen else 0

    def stop(self, timeout: float = 10) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()

    def fail(self, why: str) -> StartError:
        self.kill()
        return StartError(f"{self.name} {why}; log: {self.log}")


def wait_http(proc: Process, url: str, context: ssl.SSLContext | None, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not proc.alive():
            raise proc.fail("exited during start-up")
        try:
            with urllib.request.urlopen(url, context=context, timeout=2) as response:  # noqa: S310  (loopback https)
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise proc.fail(f"did not become ready within {timeout:.0f}s")


@dataclass
class Etcd:
    root: Path
    port: int = 0
    process: Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        self.port, peer = free_port(), free_port()
        data = self.root / "etcd-data"
        data.mkdir(parents=True, exist_ok=True)
        self.process = Process(
            "etcd",
            [
                tool("etcd"),
                "--name=sandbox",
                f"--data-dir={data}",
                f"--listen-client-urls={self.url}",
                f"--advertise-client-urls={self.url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=sandbox=http://127.0.0.1:{peer}",
                "--log-level=warn",
                "--quota-backend-bytes=4294967296",
                # The sandbox is disposable: trade durability for speed on a small machine.
                "--unsafe-no-fsync",
            ],
            self.root / "logs" / "etcd.log",
        )
        self.process.start()
        wait_http(self.process, f"{self.url}/health", None, timeout)

    def compact(self) -> int:
        """Drop all history before the current revision, as kube-apiserver's periodic compaction does:
        a watch from an older resourceVersion then gets 410 Gone. Returns the compacted revision."""
        current = self._gateway("range", {"key": base64.b64encode(b"/").decode()})
        revision = int(current["header"]["revision"])
        self._gateway("compaction", {"revision": revision, "physical": True})
        return revision

    def delete_prefix(self, prefix: str) -> None:
        """Delete every key under prefix: the storage of an API server that is gone for good."""
        key = prefix.encode()
        end = key[:-1] + bytes([key[-1] + 1])
        self._gateway("deleterange", {"key": base64.b64encode(key).decode(), "range_end": base64.b64encode(end).decode()})

    def _gateway(self, call: str, body: dict[str, object]) -> dict[str, Any]:
        """etcd's JSON gateway to its v3 KV API (no etcdctl in the toolchain)."""
        request = urllib.request.Request(  # noqa: S310  (loopback http, our own etcd)
            f"{self.url}/v3/kv/{call}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            result: dict[str, Any] = json.loads(response.read())
        return result


@dataclass
class ApiServer:
    """A kube-apiserver with its own CA, etcd prefix, ServiceAccount keys and audit log."""

    name: str
    root: Path
    etcd: Etcd
    port: int = 0
    ca: CertificateAuthority = field(default_factory=lambda: CertificateAuthority("sandbox-ca"))
    admin: KeyPair | None = None
    process: Process | None = None
    # Set when the server is gone for good (its space deleted): what watches it stops then.
    retired: threading.Event = field(default_factory=threading.Event)
    # Without a watch cache, watches read etcd directly, so an etcd compaction reaches them as 410 Gone.
    watch_cache: bool = True
    # Names and addresses it serves besides 127.0.0.1 (Service names, ClusterIPs, the node's address).
    hosts: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()

    @property
    def dir(self) -> Path:
        return self.root / "apiservers" / self.name

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def audit_log(self) -> Path:
        return self.dir / "audit.log"

    def admin_kubeconfig(self) -> str:
        assert self.admin is not None
        return kubeconfig(self.url, self.ca.cert_pem, self.name, client=self.admin)

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        serving = self.ca.issue("kube-apiserver", server=True, hosts=(NODE_IP, *self.hosts))
        self.admin = self.ca.issue("sandbox-admin", org="system:masters")
        for filename, data in (
            ("ca.crt", self.ca.cert_pem),
            ("ca.key", self.ca.key_pem),
            ("serving.crt", serving.cert_pem),
            ("serving.key", serving.key_pem),
            ("audit-policy.yaml", AUDIT_POLICY.encode()),
        ):
            (self.dir / filename).write_bytes(data)
        for secret in ("ca.key", "serving.key"):
            (self.dir / secret).chmod(0o600)
        service_account_keys(self.dir)

    def start(self, timeout: float = 120) -> None:
        if self.admin is None:
            self.prepare()
        # A restart keeps the address, as a Service in front of a restarted pod would.
        self.port = self.port or free_port()
        d = self.dir
        (d / "admin.kubeconfig").write_text(self.admin_kubeconfig())
        (d / "admin.kubeconfig").chmod(0o600)
        self.process = Process(
            f"kube-apiserver ({self.name})",
            [
                tool("kube-apiserver"),
                f"--etcd-servers={self.etcd.url}",
                f"--etcd-prefix=/sandbox/{self.name}",
                # Every address of the sandbox's namespace: loopback for its processes and the machine's
                # relay, the node's address for pods (through Services) and the node's processes.
                "--bind-address=0.0.0.0",
                f"--advertise-address={NODE_IP}",
                f"--secure-port={self.port}",
                f"--tls-cert-file={d / 'serving.crt'}",
                f"--tls-private-key-file={d / 'serving.key'}",
                f"--client-ca-file={d / 'ca.crt'}",
                f"--cert-dir={d / 'certs'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={d / 'sa.pub'}",
                f"--service-account-signing-key-file={d / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--authorization-mode=RBAC",
                "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,PodSecurity",
                # Client certificates of the CA, for the API server's own calls to kubelets.
                f"--kubelet-client-certificate={d / 'admin.crt'}",
                f"--kubelet-client-key={d / 'admin.key'}",
                f"--audit-policy-file={d / 'audit-policy.yaml'}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json",
                "--audit-log-mode=blocking",
                "--endpoint-reconciler-type=none",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                f"--watch-cache={str(self.watch_cache).lower()}",
            ],
            self.root / "logs" / f"kube-apiserver-{self.name}.log",
        )
        self.process.argv = with_overrides(self.process.argv, self.extra_args)
        self._admin_files()
        self.process.start()
        context = ssl.create_default_context(cadata=self.ca.cert_pem.decode())
        context.load_cert_chain(*self._admin_files())
        wait_http(self.process, f"{self.url}/readyz", context, timeout)

    def _admin_files(self) -> tuple[str, str]:
        assert self.admin is not None
        cert, key = self.dir / "admin.crt", self.dir / "admin.key"
        if not cert.exists():
            cert.write_bytes(self.admin.cert_pem)
            key.write_bytes(self.admin.key_pem)
            key.chmod(0o600)
        return str(cert), str(key)

    def stop(self) -> None:
        # Its state is in etcd, written before each reply: the graceful drain of open requests (10 s
        # and more with watches open) keeps nothing that a quick stop would lose.
        if self.process:
            self.process.stop(timeout=2)

    def destroy(self) -> None:
        """Stop for good and delete the storage: a server of the same name later starts empty, with new keys."""
        self.retired.set()
        self.stop()
        self.etcd.delete_prefix(f"/sandbox/{self.name}/")
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class ControllerManager:
    """The real controllers an API server needs, as a kube-controller-manager of its own."""

    apiserver: ApiServer
    controllers: tuple[str, ...]
    extra_args: tuple[str, ...] = ()
    process: Process | None = None

    def start(self, timeout: float = 60) -> None:
        d = self.apiserver.dir
        self.process = Process(
            f"kube-controller-manager ({self.apiserver.name})",
            [
                tool("kube-controller-manager"),
                f"--kubeconfig={d / 'admin.kubeconfig'}",
                f"--controllers={','.join(self.controllers)}",
                f"--root-ca-file={d / 'ca.crt'}",
                *self.extra_args,
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--authentication-kubeconfig={d / 'admin.kubeconfig'}",
                f"--authorization-kubeconfig={d / 'admin.kubeconfig'}",
                f"--cert-dir={d / 'kcm-certs'}",
                "--concurrent-job-syncs=20",
            ],
            self.apiserver.root / "logs" / f"kube-controller-manager-{self.apiserver.name}.log",
        )
        self.process.start()
        end = time.monotonic() + timeout
        while time.monotonic() < end and self.process.alive():
            if "Started controller" in self.process.log.read_text(
                errors="replace"
            ) or "Starting controller" in self.process.log.read_text(errors="replace"):
                return
            time.sleep(0.2)
        raise self.process.fail("did not start its controllers")

    def stop(self) -> None:
        if self.process:
            self.process.stop()


def pid_alive(pid: int) -> bool:
    """True for a running process; a zombie (killed, not yet reaped) counts as gone."""
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
