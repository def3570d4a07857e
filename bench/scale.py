"""Scale in the number of ITSes, cost per ITS, and the hook's memory.

Every run is the user's command, `helm upgrade --install --wait`, with every space held back D seconds
after it serves (the stand-in vcluster's start_delay_s): what is reported is the wall time beyond D.
Upstream's Helm hooks would bring ITSes up one after another; `serial_estimate_s` is n times the 1-ITS
run. KubeFlex reconciles ControlPlanes with one worker, so ITSes also wait for each other there:
`kubeflex_ready_s` is, per run, the time from each ControlPlane's creation to KubeFlex's Ready, as a
watch saw both.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from typing import Any

from ks_its_hooks import USER_AGENT
from ks_its_hooks.readiness import condition_status

from tests.harness import CHART, SERVER_SELF, PodUsage, Sandbox, mutating
from tests.sandbox.kube import run_watch

READ_VERBS = {"get", "list", "watch"}


class ReadyTimes:
    """Watches ControlPlanes while a run lasts: when each was first seen, and first seen Ready."""

    def __init__(self, sandbox: Sandbox, names: list[str]) -> None:
        self.sandbox, self.names = sandbox, set(names)
        self.created: dict[str, float] = {}
        self.ready: dict[str, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True, name="ready-times")

    def __enter__(self) -> ReadyTimes:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(15)

    def _watch(self) -> None:
        def list_fn(**kw: Any) -> Any:
            return self.sandbox.custom.list_cluster_custom_object(
                "tenancy.kflex.kubestellar.org", "v1alpha1", "controlplanes", **kw
            )

        def seen(event: str, cp: dict[str, Any]) -> None:
            name, now = cp["metadata"]["name"], time.time()
            if name in self.names:
                self.created.setdefault(name, now)
                if condition_status(cp, "Ready") == "True":
                    self.ready.setdefault(name, now)

        run_watch(self.sandbox.api, list_fn, seen, self.stop, "ready-times", lambda message: None)

    def summary(self) -> dict[str, float]:
        """Seconds from creation to Ready: median and slowest."""
        took = sorted(self.ready[name] - self.created[name] for name in self.ready)
        if len(took) != len(self.names):
            raise RuntimeError(f"KubeFlex never made {sorted(self.names - self.ready.keys())} Ready")
        return {"p50": round(statistics.median(took), 1), "max": round(took[-1], 1)}


def names(count: int) -> list[str]:
    return [f"scale{count}-{index}" for index in range(count)]


def helm_install(
    sandbox: Sandbox, release: str, namespace: str, itses: list[dict[str, Any]], *extra: str
) -> tuple[float, PodUsage]:
    """The user's command; returns its wall time and what its hook pods used (their cgroups)."""
    started = time.monotonic()
    with PodUsage(sandbox, namespace, f"batch.kubernetes.io/job-name={release}-hook") as usage:
        sandbox.helm(
            "helm3",
            "upgrade",
            "--install",
            release,
            str(CHART),
            "--namespace",
            namespace,
            "--create-namespace",
            "--wait",
            "--timeout",
            "30m",
            *sandbox.image_values(),
            "--set-json",
            f"ITSes={json.dumps(itses)}",
            "--set",
            "its.keepSpaces=false",
            *extra,
            timeout=1900,
        )
    return time.monotonic() - started, usage


def api_calls(sandbox: Sandbox, since: float, hook_user: str, spaces: list[str]) -> dict[str, int]:
    """The hook's requests: on the hosting cluster as its ServiceAccount, in each space by user agent
    (there it shares the space admin's credentials with clusteradm). Writes are counted as the tests
    count them: a server-side dry run (the webhook probe of ocm-hub's verify) stores nothing."""
    events = [e for e in sandbox.audit(since) if e["user"]["username"] == hook_user]
    for space in spaces:
        events += [
            e
            for e in sandbox.space_audit(since, space)
            if e.get("userAgent", "").startswith(USER_AGENT) and e["user"]["username"] != SERVER_SELF
        ]
    return {"mutating": len(mutating(events)), "read": sum(e["verb"] in READ_VERBS for e in events)}


def one_pod(sandbox: Sandbox, namespace: str, release: str, itses: list[dict[str, Any]]) -> dict[str, float]:
    """All ITSes of the release in one hook pod (hook.maxParallelPods=1) over spaces that are ready:
    the pod's memory peak and CPU time."""
    wall, usage = helm_install(sandbox, release, namespace, itses, "--set", "hook.maxParallelPods=1")
    (peak,) = usage.peak_bytes.values()
    return {"peak_mb": round(peak / 2**20, 1), "cpu_s": round(sum(usage.cpu_seconds.values()), 2), "wall_s": round(wall, 2)}


def wait_gone(sandbox: Sandbox, spaces: list[str], timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if all(sandbox.controlplane(name) is None for name in spaces):
            return
        time.sleep(1)
    raise RuntimeError("ControlPlanes of the previous run were not deleted")


def run(sandbox: Sandbox, counts: list[int], delay: float, cost_count: int, log: Any) -> dict[str, Any]:
    sandbox.set_faults("default", start_delay_s=delay)
    result: dict[str, Any] = {
        "delay_s": delay,
        "beyond_delay_s": {},
        "wall_s": {},
        "serial_estimate_s": {},
        "hook_pods": {},
        "kubeflex_ready_s": {},
    }
    try:
        for count in counts:
            release, namespace = f"scale{count}", f"scale-{count}"
            spaces = names(count)
            itses = [{"name": name} for name in spaces]
            since = time.time()
            with ReadyTimes(sandbox, spaces) as ready_times:
                wall, usage = helm_install(sandbox, release, namespace, itses)
            result["kubeflex_ready_s"][str(count)] = ready_times.summary()
            result["wall_s"][str(count)] = round(wall, 2)
            result["beyond_delay_s"][str(count)] = round(wall - delay, 2)
            result["serial_estimate_s"][str(count)] = round(count * result["wall_s"][str(counts[0])], 1)
            result["hook_pods"][str(count)] = {
                "pods": len(usage.peak_bytes),
                "peak_mb": round(max(usage.peak_bytes.values()) / 2**20, 1),
                "cpu_s": round(sum(usage.cpu_seconds.values()), 2),
            }
            log(
                f"scale {count}: helm upgrade --install --wait took {wall:.1f}s ({wall - delay:.1f}s beyond D={delay}s); "
                f"KubeFlex Ready after {result['kubeflex_ready_s'][str(count)]}"
            )
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
                    "noop_rerun": {k: round(v / count, 1) for k, v in rerun.items()},
                }
                log(f"api calls per ITS: {result['api_calls_per_its']}")
            if count == counts[-1]:
                result["one_pod"] = {"its_count": count, **one_pod(sandbox, namespace, release, itses)}
                log(f"one hook pod over {count} ITSes: {result['one_pod']}")
            sandbox.helm("helm3", "uninstall", release, "--namespace", namespace, "--wait", "--timeout", "10m", timeout=700)
            wait_gone(sandbox, spaces)
    finally:
        sandbox.clear_faults("default")
    first, last = str(counts[0]), str(counts[-1])
    result["ratio_last_to_first"] = round(result["wall_s"][last] / result["wall_s"][first], 2)
    return result
