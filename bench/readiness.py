"""Readiness detection latency: the KubeFlex stand-in marks a ControlPlane Ready and logs the instant
(ready_at); how long until a waiter has noticed. Three waiters run side by side in every trial:

- ours: the hook's own wait (its client's wait with the space step's check: list, then watch), in this process;
- kubectl_wait: `kubectl wait --for=condition=Ready`, the upstream chart's pattern;
- poll: a GET every POLL_INTERVAL_S seconds, as upstream scripts poll (every 5-15 s).
"""

from __future__ import annotations

import functools
import io
import json
import random
import re
import subprocess
import threading
import time
from pathlib import Path
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
WAIT_TIMEOUT_S = 60


def ready_instant(supervisor_log: Path, name: str, timeout: float = 30) -> float:
    pattern = re.compile(rf"kubeflex: ControlPlane {re.escape(name)} \(\w+\) Ready ready_at=([0-9.]+)")
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        match = pattern.search(supervisor_log.read_text(errors="replace"))
        if match:
            return float(match.group(1))
        time.sleep(0.1)
    raise RuntimeError(f"the KubeFlex stand-in never logged ControlPlane {name} Ready")


def trial(sandbox: Sandbox, name: str, delay: float) -> dict[str, float]:
    """One ControlPlane, three waiters started before it turns Ready; seconds from ready_at to each."""
    sandbox.set_faults(name, start_delay_s=delay)
    sandbox.create_controlplane(name, "host")
    noticed: dict[str, float] = {}

    def ours() -> None:
        [its] = parse_config(json.dumps(sandbox.rendered_its_json([{"name": name, "type": "host"}]))).itses
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
    ready_at = ready_instant(sandbox.root / "logs" / "supervisor.log", name)
    sandbox.delete_controlplane(name)
    sandbox.clear_faults(name)
    missing = {"ours", "kubectl_wait", "poll"} - noticed.keys()
    if missing:
        raise RuntimeError(f"trial {name}: {', '.join(sorted(missing))} never saw Ready")
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
