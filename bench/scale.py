"""Scale in the number of ITSes, cost per ITS, and the hook's memory.

Every run is the user's command, `helm upgrade --install --wait`, with every space taking D seconds to
start (the KubeFlex stand-in's start_delay_s): what is reported is the wall time beyond D. Upstream's
Helm hooks would bring ITSes up one after another; `serial_estimate_s` is n times the 1-ITS run.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from ks_its_hooks import USER_AGENT
from kubernetes import client

from tests.harness import CHART, HOOK, MUTATING, SERVER_SELF, Sandbox
from tests.sandbox.kubelet import wait_with_usage

READ_VERBS = {"get", "list", "watch"}


def names(count: int) -> list[str]:
    return [f"scale{count}-{index}" for index in range(count)]


def helm_install(sandbox: Sandbox, release: str, namespace: str, itses: list[dict[str, Any]]) -> float:
    started = time.monotonic()
    sandbox.helm("helm3", "upgrade", "--install", release, str(CHART), "--namespace", namespace, "--create-namespace",
                 "--wait", "--timeout", "30m", "--set-json", f"ITSes={json.dumps(itses)}",
                 "--set", "its.keepSpaces=false", timeout=1900)
    return time.monotonic() - started


def api_calls(sandbox: Sandbox, since: float, hook_user: str, spaces: list[str]) -> dict[str, int]:
    """The hook's requests: on the hosting cluster as its ServiceAccount, in each space by user agent
    (there it shares the space admin's credentials with clusteradm)."""
    events = [e for e in sandbox.audit(since) if e["user"]["username"] == hook_user]
    for space in spaces:
        events += [e for e in sandbox.audit(since, sandbox.space_audit_log(space))
                   if e.get("userAgent", "").startswith(USER_AGENT) and e["user"]["username"] != SERVER_SELF]
    return {"mutating": sum(e["verb"] in MUTATING for e in events), "read": sum(e["verb"] in READ_VERBS for e in events)}


def pod_usage(sandbox: Sandbox, namespace: str, release: str) -> list[dict[str, Any]]:
    pods = sandbox.root / "logs" / "pods"
    return [json.loads(path.read_text()) for path in sorted(pods.glob(f"{namespace}_{release}-hook-*.rusage.json"))]


def one_process_rss_mb(sandbox: Sandbox, namespace: str, release: str) -> dict[str, float]:
    """All ITSes of the release in one hook process (what one pod does with hook.maxParallelPods=1),
    with the hook pod's environment: start-up to exit of `install` over spaces that are ready, peak
    RSS from wait4."""
    config = sandbox.core.read_namespaced_config_map(f"{release}-its-config", namespace)
    job = client.BatchV1Api(sandbox.api).read_namespaced_job(f"{release}-hook", namespace)
    pod_env = {var.name: var.value for var in job.spec.template.spec.containers[0].env or [] if var.value is not None}
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "its.json"
        path.write_text(config.data["its.json"])
        started = time.monotonic()
        proc = subprocess.Popen([str(HOOK), "install", "--config", str(path), "--shards", "1", "--index", "0"],
                                env=sandbox.env(**pod_env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        usage = wait_with_usage(proc)
        if proc.returncode != 0:
            raise RuntimeError(f"the one-process hook run exited {proc.returncode}")
        return {"peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "wall_s": round(time.monotonic() - started, 2)}


def wait_gone(sandbox: Sandbox, spaces: list[str], timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if all(sandbox.controlplane(name) is None for name in spaces):
            return
        time.sleep(1)
    raise RuntimeError("ControlPlanes of the previous run were not deleted")


def run(sandbox: Sandbox, counts: list[int], delay: float, cost_count: int, log: Any) -> dict[str, Any]:
    sandbox.set_faults("default", start_delay_s=delay)
    result: dict[str, Any] = {"delay_s": delay, "beyond_delay_s": {}, "wall_s": {}, "serial_estimate_s": {},
                              "hook_pods": {}}
    try:
        for count in counts:
            release, namespace = f"scale{count}", f"scale-{count}"
            spaces = names(count)
            itses = [{"name": name} for name in spaces]
            since = time.time()
            wall = helm_install(sandbox, release, namespace, itses)
            result["wall_s"][str(count)] = round(wall, 2)
            result["beyond_delay_s"][str(count)] = round(wall - delay, 2)
            result["serial_estimate_s"][str(count)] = round(count * result["wall_s"][str(counts[0])], 1)
            usage = pod_usage(sandbox, namespace, release)
            result["hook_pods"][str(count)] = {
                "pods": len(usage), "peak_rss_mb": round(max(u["max_rss_kb"] for u in usage) / 1024, 1),
                "cpu_s": round(sum(u["cpu_s"] for u in usage), 2)}
            log(f"scale {count}: helm upgrade --install --wait took {wall:.1f}s ({wall - delay:.1f}s beyond D={delay}s)")
            hook_user = f"system:serviceaccount:{namespace}:{release}-hook"
            if count == cost_count:
                time.sleep(1.1)  # audit timestamps have one-second resolution
                install = api_calls(sandbox, since, hook_user, spaces)
                time.sleep(1.1)
                rerun_since = time.time()
                helm_install(sandbox, release, namespace, itses)
                time.sleep(1.1)
                rerun = api_calls(sandbox, rerun_since, hook_user, spaces)
                result["api_calls_per_its"] = {
                    "its_count": count,
                    "install": {k: round(v / count, 1) for k, v in install.items()},
                    "noop_rerun": {k: round(v / count, 1) for k, v in rerun.items()}}
                log(f"api calls per ITS: {result['api_calls_per_its']}")
            if count == counts[-1]:
                result["one_process"] = {"its_count": count, **one_process_rss_mb(sandbox, namespace, release)}
                log(f"one hook process over {count} ITSes: {result['one_process']}")
            sandbox.helm("helm3", "uninstall", release, "--namespace", namespace, "--wait", "--timeout", "10m",
                         timeout=700)
            wait_gone(sandbox, spaces)
    finally:
        sandbox.clear_faults("default")
    first, last = str(counts[0]), str(counts[-1])
    result["ratio_last_to_first"] = round(result["wall_s"][last] / result["wall_s"][first], 2)
    return result
