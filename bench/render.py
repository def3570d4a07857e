"""Render time of `helm template` by number of ITSes (it must grow linearly) and the hook's start-up time."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from bench.stats import linear_fit, median
from tests.harness import CHART, Sandbox
from tests.sandbox.servers import BIN, REPO

HOOK = REPO / ".venv" / "bin" / "ks-its-hook"

REPEATS = 3


def timed(argv: list[str], sandbox: Sandbox) -> float:
    started = time.monotonic()
    subprocess.run(argv, env=sandbox.env(), capture_output=True, check=True)
    return time.monotonic() - started


def run(sandbox: Sandbox, counts: list[int], log: Any) -> dict[str, Any]:
    seconds: dict[str, float] = {}
    helm = str(BIN / "helm3")
    for count in counts:
        itses = json.dumps([{"name": f"its{index}"} for index in range(count)])
        argv = [helm, "template", "ks-its", str(CHART), "--namespace", "bench", "--set-json", f"ITSes={itses}"]
        seconds[str(count)] = round(median([timed(argv, sandbox) for _ in range(REPEATS)]), 3)
        log(f"helm template, {count} ITSes: {seconds[str(count)]}s")
    slope, intercept, r2 = linear_fit([float(c) for c in counts], list(seconds.values()))
    startup = median([timed([str(HOOK), "--help"], sandbox) for _ in range(5)])
    return {
        "render_s": seconds,
        "render_fit": {"ms_per_its": round(slope * 1000, 3), "fixed_s": round(intercept, 3), "r2": round(r2, 4)},
        "hook_startup_s": round(startup, 3),
    }
