"""Stand-in for the kubelet: runs each Pod's container command as a local process.

The real kube-controller-manager creates the Pods of a Job (indexes, parallelism, backoffLimit,
activeDeadlineSeconds, Job status and conditions); this only runs them and reports their phase:
- the image's repository name maps to local directories put first on PATH (the hook image to the
  project's virtualenv, clusteradm to .cache/bin);
- the process gets the Pod's env (values, fieldRef, secretKeyRef, configMapKeyRef), its Secret,
  ConfigMap, emptyDir and projected volumes as local directories (paths in args and env under a
  mountPath are rewritten to them), and a real token of the Pod's ServiceAccount (TokenRequest,
  bound to the Pod) in a kubeconfig named by KUBECONFIG. KUBERNETES_SERVICE_HOST is not set, so an
  in-cluster client falls back to that kubeconfig: the API server enforces the Pod's RBAC.
- a Pod that is deleted while it runs has its process killed.
Each run's output is kept in logs/pods/<namespace>_<pod>.log.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client

from .kube import api_client, run_watch
from .servers import ApiServer, kubeconfig

SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def image_name(image: str) -> str:
    """registry/path/name:tag@digest -> name"""
    return image.split("@", maxsplit=1)[0].rsplit("/", 1)[-1].split(":", maxsplit=1)[0]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class PodRunner:
    def __init__(self, apiserver: ApiServer, root: Path, images: dict[str, list[Path]], log: Any) -> None:
        self.apiserver = apiserver
        self.root = root
        self.images = images
        self.log = log
        self.api = api_client(apiserver.admin_kubeconfig())
        self.core = client.CoreV1Api(self.api)
        self._seen: set[str] = set()
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def run(self, stop: threading.Event) -> None:
        run_watch(self.api, self.core.list_pod_for_all_namespaces, self._handle, stop, "kubelet", self.log)
        with self._lock:
            for proc in self._procs.values():
                _kill(proc)

    def _handle(self, event: str, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        if event == "DELETED" or meta.get("deletionTimestamp"):
            with self._lock:
                proc = self._procs.get(uid)
            if proc is not None:
                self.log(f"kubelet: pod {meta['namespace']}/{meta['name']} deleted; killing its process")
                _kill(proc)
            return
        if (pod.get("status") or {}).get("phase", "Pending") != "Pending":
            return
        with self._lock:
            if uid in self._seen:
                return
            self._seen.add(uid)
        threading.Thread(target=self._run_pod, args=(pod,), daemon=True, name=f"pod-{meta['name']}").start()

    # --- one pod -----------------------------------------------------------------------------

    def _run_pod(self, pod: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        ns, name, uid = meta["namespace"], meta["name"], meta["uid"]
        workdir = self.root / "pods" / f"{ns}_{name}_{uid[:8]}"
        logfile = self.root / "logs" / "pods" / f"{ns}_{name}.log"
        logfile.parent.mkdir(parents=True, exist_ok=True)
        started = _now()
        exit_code, reason, message = 1, "Error", ""
        try:
            workdir.mkdir(parents=True, exist_ok=True)
            mounts = self._volumes(pod, workdir)
            env = self._kube_env(pod, workdir)
            containers = (spec.get("initContainers") or []) + spec["containers"][:1]
            self._status(ns, name, {"phase": "Running", "startTime": started, "containerStatuses": [
                _container_status(spec["containers"][0], {"running": {"startedAt": started}}, ready=True)]})
            for container in containers:
                exit_code = self._run_container(pod, container, mounts, env, workdir, logfile)
                if exit_code != 0:
                    break
            reason = "Completed" if exit_code == 0 else "Error"
        except Exception as err:
            detail = f"{err.status} {err.reason}" if isinstance(err, client.exceptions.ApiException) else str(err)
            message = f"{type(err).__name__}: {detail}"
            self.log(f"kubelet: pod {ns}/{name} could not run: {message}")
            with open(logfile, "a") as out:
                out.write(f"[sandbox kubelet] {message}\n")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)  # holds the token: never kept
            with self._lock:
                self._procs.pop(uid, None)
        terminated = {"exitCode": exit_code, "reason": reason, "message": message, "startedAt": started,
                      "finishedAt": _now()}
        try:
            self._status(ns, name, {
                "phase": "Succeeded" if exit_code == 0 else "Failed",
                "containerStatuses": [_container_status(spec["containers"][0], {"terminated": terminated})]})
        except client.exceptions.ApiException as err:
            if err.status != 404:
                self.log(f"kubelet: pod {ns}/{name} status update failed: {err.status}")
        self.log(f"kubelet: pod {ns}/{name} exited {exit_code}")

    def _status(self, ns: str, name: str, status: dict[str, Any]) -> None:
        self.core.patch_namespaced_pod_status(name, ns, {"status": status},
                                              _content_type="application/merge-patch+json")

    def _run_container(self, pod: dict[str, Any], container: dict[str, Any], mounts: dict[str, Path],
                       kube_env: dict[str, str], workdir: Path, logfile: Path) -> int:
        dirs = self.images.get(image_name(container["image"]))
        if dirs is None:
            raise RuntimeError(f"image {container['image']} is not mapped to a local command")
        env = {"PATH": os.pathsep.join([str(d) for d in dirs] + [os.environ.get("PATH", "")]),
               "HOME": str(workdir), "LANG": "C.UTF-8"}
        env.update(kube_env)
        env.update({k: _rewrite(v, mounts) for k, v in self._container_env(pod, container).items()})
        argv = [_rewrite(a, mounts) for a in (container.get("command") or []) + (container.get("args") or [])]
        if not argv:
            raise RuntimeError(f"container {container['name']} has no command")
        with open(logfile, "ab") as out:
            proc = subprocess.Popen(argv, env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            with self._lock:
                self._procs[pod["metadata"]["uid"]] = proc
            usage = wait_with_usage(proc)
        logfile.with_name(f"{logfile.stem}.{container['name']}.rusage.json").write_text(json.dumps(
            {"max_rss_kb": usage.ru_maxrss, "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
             "exit_code": proc.returncode}))
        return proc.returncode

    def _kube_env(self, pod: dict[str, Any], workdir: Path) -> dict[str, str]:
        """A kubeconfig with a bound token of the Pod's ServiceAccount."""
        meta, spec = pod["metadata"], pod["spec"]
        if spec.get("automountServiceAccountToken") is False:
            return {}
        token = self._token(pod)
        path = workdir / "kubeconfig"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(kubeconfig(self.apiserver.url, self.apiserver.ca.cert_pem,
                                    f"{meta['namespace']}-{spec.get('serviceAccountName', 'default')}", token=token))
        return {"KUBECONFIG": str(path)}

    def _token(self, pod: dict[str, Any], expiration: int = 3600) -> str:
        meta, spec = pod["metadata"], pod["spec"]
        request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
            audiences=[], expiration_seconds=expiration,
            bound_object_ref=client.V1BoundObjectReference(kind="Pod", api_version="v1", name=meta["name"],
                                                           uid=meta["uid"])))
        result = self.core.create_namespaced_service_account_token(
            spec.get("serviceAccountName", "default"), meta["namespace"], request)
        return str(result.status.token)

    def _volumes(self, pod: dict[str, Any], workdir: Path) -> dict[str, Path]:
        ns = pod["metadata"]["namespace"]
        local: dict[str, Path] = {}
        for volume in pod["spec"].get("volumes") or []:
            target = workdir / "volumes" / volume["name"]
            target.mkdir(parents=True, exist_ok=True)
            files: dict[str, bytes] = {}
            sources = volume["projected"]["sources"] if "projected" in volume else [volume]
            for source in sources:
                files.update(self._volume_files(ns, pod, source))
            for rel, data in files.items():
                path = target / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                path.chmod(0o600)
            local[volume["name"]] = target
        mounts: dict[str, Path] = {}
        container = pod["spec"]["containers"][0]
        for mount in container.get("volumeMounts") or []:
            base = local[mount["name"]]
            mounts[mount["mountPath"]] = base / mount["subPath"] if mount.get("subPath") else base
        return mounts

    def _volume_files(self, ns: str, pod: dict[str, Any], source: dict[str, Any]) -> dict[str, bytes]:
        if "configMap" in source:
            ref = source["configMap"]
            data = self.core.read_namespaced_config_map(ref["name"], ns).data or {}
            return _select({k: v.encode() for k, v in data.items()}, ref.get("items"))
        if "secret" in source:
            ref = source["secret"]
            name = ref.get("secretName") or ref.get("name")
            data = self.core.read_namespaced_secret(name, ns).data or {}
            return _select({k: base64.b64decode(v) for k, v in data.items()}, ref.get("items"))
        if "serviceAccountToken" in source:
            ref = source["serviceAccountToken"]
            return {ref["path"]: self._token(pod, ref.get("expirationSeconds", 3600)).encode()}
        if "downwardAPI" in source:
            return {item["path"]: str(_field(pod, item["fieldRef"]["fieldPath"])).encode()
                    for item in source["downwardAPI"].get("items") or [] if "fieldRef" in item}
        return {}  # emptyDir and the like: an empty directory

    def _container_env(self, pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
        ns = pod["metadata"]["namespace"]
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                data = self.core.read_namespaced_config_map(source["configMapRef"]["name"], ns).data or {}
                env.update({prefix + k: v for k, v in data.items()})
            if "secretRef" in source:
                data = self.core.read_namespaced_secret(source["secretRef"]["name"], ns).data or {}
                env.update({prefix + k: base64.b64decode(v).decode() for k, v in data.items()})
        for item in container.get("env") or []:
            ref = item.get("valueFrom")
            if ref is None:
                env[item["name"]] = item.get("value", "")
            elif "fieldRef" in ref:
                env[item["name"]] = str(_field(pod, ref["fieldRef"]["fieldPath"]))
            elif "configMapKeyRef" in ref:
                key = ref["configMapKeyRef"]
                env[item["name"]] = (self.core.read_namespaced_config_map(key["name"], ns).data or {})[key["key"]]
            elif "secretKeyRef" in ref:
                key = ref["secretKeyRef"]
                data = self.core.read_namespaced_secret(key["name"], ns).data or {}
                env[item["name"]] = base64.b64decode(data[key["key"]]).decode()
        return env


def _select(data: dict[str, bytes], items: list[dict[str, str]] | None) -> dict[str, bytes]:
    if not items:
        return data
    return {item["path"]: data[item["key"]] for item in items if item["key"] in data}


def _field(pod: dict[str, Any], path: str) -> Any:
    """Resolve a downward-API fieldPath like metadata.annotations['x'] or spec.serviceAccountName."""
    if "[" in path:
        head, key = path.split("[", 1)
        return _field(pod, head).get(key.strip("]'\""), "")
    value: Any = pod
    for part in path.split("."):
        value = (value or {}).get(part, "")
    return value


def _rewrite(value: str, mounts: dict[str, Path]) -> str:
    for mount_path in sorted(mounts, key=len, reverse=True):
        if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
            return str(mounts[mount_path]) + value[len(mount_path.rstrip("/")):]
    return value


def _container_status(container: dict[str, Any], state: dict[str, Any], ready: bool = False) -> dict[str, Any]:
    return {"name": container["name"], "image": container["image"], "imageID": "", "ready": ready,
            "started": "running" in state, "restartCount": 0, "state": state}


def wait_with_usage(proc: subprocess.Popen[Any]) -> resource.struct_rusage:
    """Wait for proc and return its resource usage (peak RSS, CPU): wait4, which Popen.wait does not offer."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
