"""What the sandbox takes from the machine, and gives back at teardown whatever state it was left in.

- a network namespace, where every server, the node and its pods live; only loopback relays
  (socat, through unix sockets) cross to the machine, so traffic stays inside;
- a cgroup in the unified hierarchy that holds every process of the sandbox, the containers of
  its node included: cgroup.kill ends them all, even after the supervisor was killed;
- the node's cgroup root in each v1 controller (the kubelet's `cgroupRoot`);
- the host sysctls the kubelet changes, saved first and restored at teardown.

Names derive from the sandbox directory, so a later run finds what a killed run left.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
# The unified (v2) hierarchy of this hybrid layout: no controllers, but it tracks processes and
# has cgroup.kill. Containers join it too (runc follows the kubelet's cgroupRoot there).
UNIFIED = CGROUP_ROOT / "unified"
CONTAINER_LOG_LINKS = Path("/var/log/containers")
# The v1 controllers the kubelet requires under its cgroupRoot.
V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids", "systemd", "hugetlb", "blkio", "devices", "freezer")
# Host-wide sysctls the kubelet sets when it starts (protectKernelDefaults: false).
KUBELET_SYSCTLS = ("vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops")

NODE_IP = "10.244.0.1"
POD_CIDR = "10.244.0.0/24"
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
DNS_SERVICE_IP = "10.96.0.10"
BRIDGE = "cni0"


class HostError(RuntimeError):
    pass


def run(*argv: str) -> str:
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=60)
    if result.returncode != 0:
        raise HostError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
    return result.stdout


@dataclass(frozen=True)
class Host:
    """The machine resources of one sandbox directory."""

    root: Path

    @property
    def id(self) -> str:
        return "ks-its-" + hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:8]

    @property
    def netns(self) -> str:
        return self.id

    @property
    def netns_path(self) -> str:
        return f"/run/netns/{self.netns}"

    @property
    def cgroup(self) -> str:
        """The cgroup path (same in every hierarchy) of the sandbox."""
        return f"/{self.id}"

    @property
    def kubelet_cgroup_root(self) -> str:
        return f"{self.cgroup}/node"

    def in_netns(self, *argv: str) -> list[str]:
        return ["nsenter", f"--net={self.netns_path}", *argv]

    # --- up --------------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Everything from a previous run is gone (see teardown); make the namespace and cgroups."""
        for tool in ("ip", "nsenter", "socat", "containerd", "runc", "iptables"):
            if shutil.which(tool) is None:
                raise HostError(f"{tool} is not installed: run `make tools` (as root)")
        self._save_sysctls()
        run("ip", "netns", "add", self.netns)
        ip = ["ip", "-n", self.netns]
        run(*ip, "link", "set", "lo", "up")
        # The node's address is on the bridge the CNI plugin attaches pods to; the API servers
        # advertise it, so it must exist before the first pod.
        run(*ip, "link", "add", BRIDGE, "type", "bridge")
        run(*ip, "addr", "add", f"{NODE_IP}/24", "dev", BRIDGE)
        run(*ip, "link", "set", BRIDGE, "up")
        # A route to the Service range, so that local processes reach ClusterIPs (kube-proxy DNATs
        # them in OUTPUT, after routing). No default route: nothing leaves the namespace.
        run(*ip, "route", "add", SERVICE_CIDR, "dev", BRIDGE)
        run(*self.in_netns("sysctl", "-q", "-w", "net.ipv4.ip_forward=1"))
        for controller in V1_CONTROLLERS:
            path = CGROUP_ROOT / controller / self.kubelet_cgroup_root.lstrip("/")
            if (CGROUP_ROOT / controller).is_dir():
                path.mkdir(parents=True, exist_ok=True)
                if controller == "cpuset":  # a new cpuset has no CPUs until given its parent's
                    for parent in (path.parent, path):
                        for key in ("cpuset.cpus", "cpuset.mems"):
                            (parent / key).write_text((parent.parent / key).read_text())
        (UNIFIED / self.id / "supervisor").mkdir(parents=True, exist_ok=True)

    def join_cgroup_argv(self, *argv: str) -> list[str]:
        """argv run from inside the sandbox's cgroup: everything it starts stays there."""
        procs = UNIFIED / self.id / "supervisor" / "cgroup.procs"
        return ["sh", "-c", f'echo $$ > {procs} && exec "$@"', "sh", *argv]

    # --- teardown --------------------------------------------------------------------------------

    def teardown(self) -> None:
        """Idempotent; works whatever a killed run left behind."""
        self._kill_processes()
        self._unmount_under(self.root)
        with contextlib.suppress(HostError):
            run("ip", "netns", "del", self.netns)
        self._remove_container_log_links()
        self._restore_sysctls()
        self._remove_cgroups()

    def _remove_container_log_links(self) -> None:
        """The kubelet links each container's log into /var/log/containers (a fixed path) and only
        unlinks when it removes the container: a stopped node leaves the links pointing into root."""
        prefix = str(self.root.resolve()) + "/"
        links = CONTAINER_LOG_LINKS.glob("*.log") if CONTAINER_LOG_LINKS.is_dir() else []
        for link in links:
            if link.is_symlink() and os.readlink(link).startswith(prefix):
                link.unlink(missing_ok=True)

    def _kill_processes(self, timeout: float = 30) -> None:
        cgroup = UNIFIED / self.id
        if not cgroup.is_dir():
            return
        (cgroup / "cgroup.kill").write_text("1")
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not any((d / "cgroup.procs").read_text().strip() for d in _depth_first(cgroup)):
                return
            time.sleep(0.1)
        raise HostError(f"processes of cgroup {cgroup} did not exit within {timeout:.0f}s")

    @staticmethod
    def _unmount_under(root: Path) -> None:
        prefix = str(root.resolve()) + "/"
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        for target in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
            subprocess.run(["umount", "--lazy", target], capture_output=True, check=False)

    def _remove_cgroups(self, timeout: float = 30) -> None:
        # A cgroup whose last task has left cgroup.procs can still be busy (EBUSY) while the kernel
        # releases that task: on a loaded machine that takes a while, so each removal is retried.
        end = time.monotonic() + timeout
        for hierarchy in [UNIFIED, *(CGROUP_ROOT / c for c in V1_CONTROLLERS)]:
            top = hierarchy / self.id
            if top.is_dir():
                for directory in _depth_first(top):
                    while True:
                        try:
                            directory.rmdir()
                            break
                        except FileNotFoundError:
                            break
                        except OSError as error:
                            if time.monotonic() > end:
                                raise HostError(f"cgroup {directory} not removed within {timeout:.0f}s: {error}") from error
                            time.sleep(0.1)

    @property
    def _sysctl_backup(self) -> Path:
        return Path("/run") / f"{self.id}.sysctl.json"

    def _save_sysctls(self) -> None:
        if not self._sysctl_backup.exists():  # a killed run's backup holds the true originals
            saved = {key: (Path("/proc/sys") / key).read_text().strip() for key in KUBELET_SYSCTLS}
            self._sysctl_backup.write_text(json.dumps(saved))

    def _restore_sysctls(self) -> None:
        if self._sysctl_backup.exists():
            for key, value in json.loads(self._sysctl_backup.read_text()).items():
                with contextlib.suppress(OSError):
                    (Path("/proc/sys") / key).write_text(value)
            self._sysctl_backup.unlink()


def _depth_first(top: Path) -> list[Path]:
    """top and every cgroup below it, deepest first."""
    found = [Path(dirpath) for dirpath, _, _ in os.walk(top)]
    return sorted(found, key=lambda p: len(p.parts), reverse=True)
