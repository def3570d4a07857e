"""Starts and stops the whole sandbox: one process owns every server and stand-in it started."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .kubeflex import FAULTS_NAME, FAULTS_NAMESPACE, KubeFlex
from .kubelet import PodRunner
from .ocm import ClusterManagerStandIn
from .servers import (
    BIN,
    REPO,
    ApiServer,
    ControllerManager,
    Etcd,
    StartError,
    module_dir,
    pid_alive,
    pinned,
    tool,
)

DEFAULT_DIR = REPO / ".cache" / "sandbox"
# Image repository name -> local directories that stand for the image's filesystem.
# "sandbox-shell" stands for any image with a POSIX shell: the machine's own PATH.
IMAGES = {"ks-its-hooks": [REPO / ".venv" / "bin", BIN], "clusteradm": [BIN], "kubectl": [BIN], "sandbox-shell": []}
SELF_CHECK_CHART = Path(__file__).parent / "selfcheck-chart"


class Sandbox:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.stop_event = threading.Event()
        self.etcd = Etcd(root)
        self.hosting = ApiServer("hosting", root, self.etcd)
        self.external = ApiServer("external", root, self.etcd)
        self.kcm = ControllerManager(self.hosting)
        self.kubeflex: KubeFlex | None = None
        self._log_lock = threading.Lock()

    def log(self, message: str) -> None:
        with self._log_lock:
            print(time.strftime("%H:%M:%S ") + message, flush=True)

    def _thread(self, name: str, target: Callable[[threading.Event], None]) -> None:
        threading.Thread(target=target, args=(self.stop_event,), daemon=True, name=name).start()

    def _hub(self, apiserver: ApiServer) -> None:
        assert self.kubeflex is not None
        kubeflex = self.kubeflex
        standin = ClusterManagerStandIn(apiserver, lambda: kubeflex.faults("ocm"), self.log)
        # Until the space is deleted; the hosting cluster's stop ends the process, and daemon threads with it.
        threading.Thread(target=standin.run, args=(apiserver.retired,), daemon=True, name=f"ocm-{apiserver.name}").start()

    def start(self) -> None:
        began = time.monotonic()
        self.etcd.start()
        self.hosting.start()
        self.kcm.start()
        self.external.start()
        admin = self.hosting.dir / "admin.kubeconfig"
        crds = module_dir("github.com/kubestellar/kubeflex", pinned("KUBEFLEX_VERSION")) / "config" / "crd" / "bases"
        subprocess.run([tool("kubectl"), "--kubeconfig", str(admin), "apply", "--server-side", "-f", str(crds)],
                       check=True, capture_output=True, timeout=60)
        subprocess.run([tool("kubectl"), "--kubeconfig", str(admin), "wait", "--for=condition=Established",
                        "crd/controlplanes.tenancy.kflex.kubestellar.org", "crd/postcreatehooks.tenancy.kflex.kubestellar.org",
                        "--timeout=60s"], check=True, capture_output=True, timeout=70)
        subprocess.run([tool("kubectl"), "--kubeconfig", str(admin), "create", "configmap", FAULTS_NAME,
                        "-n", FAULTS_NAMESPACE], check=True, capture_output=True, timeout=30)
        self.kubeflex = KubeFlex(self.hosting, self.etcd, self._hub, self.log)
        self._thread("kubeflex", self.kubeflex.run)
        self._thread("kubelet", PodRunner(self.hosting, self.root, IMAGES, self.log).run)
        self._hub(self.hosting)
        self._hub(self.external)
        (self.root / "kubeconfig").write_text(self.hosting.admin_kubeconfig())
        (self.root / "external.kubeconfig").write_text(self.external.admin_kubeconfig())
        for name in ("kubeconfig", "external.kubeconfig"):
            (self.root / name).chmod(0o600)
        state = {"pid": os.getpid(), "hosting": self.hosting.url, "external": self.external.url,
                 "etcd": self.etcd.url, "started_s": round(time.monotonic() - began, 1)}
        (self.root / "state.json").write_text(json.dumps(state, indent=2))
        self.log(f"sandbox: up in {state['started_s']}s: hosting {self.hosting.url}, external {self.external.url}")

    def stop(self) -> None:
        self.stop_event.set()
        time.sleep(0.2)
        if self.kubeflex:
            for space in list(self.kubeflex.spaces.values()):
                space.stop()
        for server in (self.kcm, self.external, self.hosting):
            server.stop()
        if self.etcd.process:
            self.etcd.process.stop()


def self_check(root: Path) -> None:
    """A helm install with OpenAPI validation on: a hand-made API server build can serve a broken
    OpenAPI document, after which every helm install fails."""
    env = dict(os.environ, KUBECONFIG=str(root / "kubeconfig"), HELM_CACHE_HOME=str(root / "helm-cache"),
               HELM_CONFIG_HOME=str(root / "helm-config"), HELM_DATA_HOME=str(root / "helm-data"))
    helm = tool("helm")
    for argv in ([helm, "install", "selfcheck", str(SELF_CHECK_CHART), "-n", "sandbox-selfcheck", "--create-namespace",
                  "--wait", "--timeout", "60s"],
                 [helm, "uninstall", "selfcheck", "-n", "sandbox-selfcheck", "--wait"]):
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
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
    """Stop the supervisor and everything in its process group; remove the sandbox's files."""
    pid_file = root / "supervisor.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text() or 0)
        if pid and pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
            end = time.monotonic() + 30
            while pid_alive(pid) and time.monotonic() < end:
                time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)  # anything left of a killed or stuck run
    shutil.rmtree(root, ignore_errors=True)


def up(root: Path, timeout: float = 300) -> dict[str, Any]:
    """Start the sandbox in the background (reusing one that is running) and self-check it."""
    running = state(root)
    if running:
        return running
    down(root)  # a stale or killed previous run must not break this one
    (root / "logs").mkdir(parents=True)
    log = root / "logs" / "supervisor.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tests.sandbox", "serve", "--dir", str(root)], cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
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
            raise StartError((errors or lines or [f"sandbox exited; log: {log}"])[-1].removeprefix("sandbox: error: "))
        time.sleep(0.2)
    down(root)
    raise StartError(f"sandbox did not start within {timeout:.0f}s; log: {log}")


def serve(root: Path) -> int:
    sandbox = Sandbox(root)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    try:
        sandbox.start()
    except (StartError, subprocess.CalledProcessError, OSError) as err:
        detail = err.stderr.decode(errors="replace").strip() if isinstance(err, subprocess.CalledProcessError) else ""
        print(f"sandbox: error: {err} {detail}".strip(), flush=True)
        sandbox.stop()
        return 1
    stopping.wait()
    sandbox.log("sandbox: stopping")
    sandbox.stop()
    return 0
