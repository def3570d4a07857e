"""Readiness detection latency: KubeFlex marks a vcluster ControlPlane Ready (its status write, in the
hosting API server's audit log: ready_at); how long until a waiter has noticed. Each space's readiness
is held back a few seconds (the stand-in vcluster's start_delay_s), so that the poller's phase varies.
Three waiters run side by side in every trial:

- ours: the hook's own wait (its client's wait with the space step's check: list, then watch), in this process;
- kubectl_wait: `kubectl wait --for=condition=Ready`, the upstream chart's pattern;
- poll: a GET every POLL_INTERVAL_S seconds, as upstream scripts poll (every 5-15 s).
"""

from __future__ import annotations

import datetime
import functools
import io
import json
import random
import subprocess
import threading
import time
from typing import Any

from ks_its_hooks import kube
from ks_its_hooks.client import Client
from ks_its_hooks.deadline import Deadline
from ks_its_hooks.log import EventLog
from ks_its_hooks.readiness import condition_status
from ks_its_hooks.space import controlplane_pending
from ks_its_hooks.spec import parse_config

from bench.stats import percentiles
from tests.harness import Sandbox
from tests.sandbox.servers import BIN

POLL_INTERVAL_S = 5.0
WAIT_TIMEOUT_S = 180  # a vcluster pod starts in 15-40 s on a loaded node


KUBEFLEX_USER = "system:serviceaccount:kubeflex-system:kubeflex-controller-manager"


def ready_instant(sandbox: Sandbox, name: str, since: float, noticed: float) -> float:
    """When KubeFlex's write that made the ControlPlane Ready completed: its last status write before
    the first waiter noticed Ready (the audit log records the instant a write completes, not what it wrote)."""
    writes = [
        datetime.datetime.fromisoformat(event["stageTimestamp"]).timestamp()
        for event in sandbox.audit(since)
        if event["user"]["username"] == KUBEFLEX_USER
        and event["verb"] in ("update", "patch")
        and (event.get("objectRef") or {}).get("resource") == "controlplanes"
        and (event.get("objectRef") or {}).get("subresource") == "status"
        and (event.get("objectRef") or {}).get("name") == name
    ]
    before = [at for at in writes if at <= noticed]
    if not before:
        raise RuntimeError(f"no status write of KubeFlex for ControlPlane {name} before it was seen Ready")
    return max(before)


def trial(sandbox: Sandbox, name: str, delay: float) -> dict[str, float]:
    """One ControlPlane, three waiters started before it turns Ready; seconds from ready_at to each."""
    sandbox.set_faults(name, start_delay_s=delay)
    since = time.time() - 1  # audit timestamps have one-second resolution
    sandbox.create_controlplane(name, "vcluster")
    noticed: dict[str, float] = {}

    def ours() -> None:
        [its] = parse_config(json.dumps(sandbox.rendered_its_json([{"name": name}]))).itses
        api = Client(sandbox.api, Deadline(WAIT_TIMEOUT_S), EventLog(name, io.StringIO()), lambda: "space")
        api.wait(kube.CONTROLPLANES, functools.partial(controlplane_pending, its), f"ControlPlane {name} Ready", name=name)
        noticed["ours"] = time.time()

    def kubectl_wait() -> None:
        subprocess.run(
            [str(BIN / "kubectl"), "wait", "--for=condition=Ready", f"controlplane/{name}", f"--timeout={WAIT_TIMEOUT_S}s"],
            env=sandbox.env(),
            capture_output=True,
            check=True,
        )
        noticed["kubectl_wait"] = time.time()

    def poll() -> None:
        end = time.monotonic() + WAIT_TIMEOUT_S
        while time.monotonic() < end:
            cp = sandbox.controlplane(name)
            if cp and condition_status(cp, "Ready") == "True":
                noticed["poll"] = time.time()
                return
            time.sleep(POLL_INTERVAL_S)

    threads = [threading.Thread(target=waiter, daemon=True) for waiter in (ours, kubectl_wait, poll)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_TIMEOUT_S + 10)
    sandbox.delete_controlplane(name)
    sandbox.clear_faults(name)
    missing = {"ours", "kubectl_wait", "poll"} - noticed.keys()
    if missing:
        raise RuntimeError(f"trial {name}: {', '.join(sorted(missing))} never saw Ready")
    ready_at = ready_instant(sandbox, name, since, min(noticed.values()))
    return {waiter: at - ready_at for waiter, at in noticed.items()}


def run(sandbox: Sandbox, trials: int, log: Any) -> dict[str, Any]:
    # Seeded: the same start-up delays in every run, spread so the poller's phase varies.
    rng = random.Random(20261124)  # noqa: S311 (not a secret)
    samples: dict[str, list[float]] = {"ours": [], "kubectl_wait": [], "poll": []}
    for index in range(trials):
        result = trial(sandbox, f"latency-{index}", rng.uniform(1.0, 4.0))
        for waiter, seconds in result.items():
            samples[waiter].append(seconds)
        log(f"readiness trial {index + 1}/{trials}: " + ", ".join(f"{w} {s:.3f}s" for w, s in result.items()))
    return {waiter: {**percentiles(values), "trials": len(values)} for waiter, values in samples.items()}
