"""python -m bench --out bench: run every benchmark on a sandbox of its own, write results.json and
results.md, and quote results.md in README.md (between the bench markers)."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import ocm, readiness, render, scale
from tests.harness import Sandbox
from tests.sandbox.kube import api_client
from tests.sandbox.servers import BIN, REPO
from tests.sandbox.supervisor import down, up

README = REPO / "README.md"
MARKERS = ("<!-- bench:start -->", "<!-- bench:end -->")


def log(message: str) -> None:
    print(f"bench: {message}", flush=True)


def recorded_seconds(path: Path) -> float | None:
    """A figure a previous `make tools` (cold) or `make test` wrote down; None if there is none."""
    try:
        return float(path.read_text().strip())
    except (OSError, ValueError):
        return None


def machine() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text()
    mem_kb = int(re.findall(r"MemTotal:\s+(\d+)", meminfo)[0])
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.+)", cpuinfo)
    versions = dict(
        line.split("=", 1)
        for line in (REPO / "ci" / "versions.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "cpu": model.group(1).strip() if model else platform.processor(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "date": datetime.date.today().isoformat(),
        "tools": {**versions, "KUBECTL": kubectl_version()},
    }


def kubectl_version() -> str:
    out = subprocess.run(
        [str(BIN / "kubectl"), "version", "--client", "-o", "json"], capture_output=True, text=True, check=True
    ).stdout
    return str(json.loads(out)["clientVersion"]["gitVersion"])


def markdown(results: dict[str, Any]) -> str:
    latency, scaling, calls = results["readiness_latency_s"], results["scale_detail"], results["api_calls_per_its"]
    m = results["machine"]
    rows = [
        f"Measured by `make bench` on {m['cores']} cores, {m['memory_gib']} GiB ({m['cpu']}), {m['date']}; "
        f"Kubernetes {m['tools']['KUBERNETES_VERSION']}, helm {m['tools']['HELM3_VERSION']}.",
        "",
        "| Figure | Ours | Baseline (same run) |",
        "|---|---|---|",
        f"| Readiness detection p50 / p95 ({latency['ours']['trials']} trials) | "
        f"{latency['ours']['p50']:.3f} s / {latency['ours']['p95']:.3f} s | `kubectl wait` "
        f"{latency['kubectl_wait']['p50']:.3f} s / {latency['kubectl_wait']['p95']:.3f} s; "
        f"{readiness.POLL_INTERVAL_S:.0f} s poll {latency['poll']['p50']:.2f} s / {latency['poll']['p95']:.2f} s |",
    ]
    for count, beyond in results["scale"].items():
        itses = "1 ITS" if count == "1" else f"{count} ITSes"
        rows.append(
            f"| `helm upgrade --install --wait`, {itses}, time beyond D={scaling['delay_s']:.0f} s | "
            f"{beyond:.1f} s (wall {scaling['wall_s'][count]:.1f} s) | one after another: "
            f"{scaling['serial_estimate_s'][count]:.0f} s |"
        )
    for count, ready in scaling["kubeflex_ready_s"].items():
        itses = "1 ITS" if count == "1" else f"{count} ITSes"
        rows.append(
            f"| KubeFlex: ControlPlane created to Ready (its one worker, the space pod's start, D), {itses}, "
            f"median / slowest | {ready['p50']:.0f} s / {ready['max']:.0f} s | |"
        )
    rows += [
        f"| Wall time ratio, {list(results['scale'])[-1]} ITSes to 1 | {results['scale_ratio_last_to_1']:.2f} | "
        f"one after another: {list(results['scale'])[-1]} |",
    ]
    for count, hub in results["hubs"].items():
        itses = "1 ITS" if count == "1" else f"{count} ITSes"
        rows.append(
            f"| {itses}: hub serving / a WEC joined to each / first ManifestWork applied on each, "
            f"from `helm upgrade --install` | {hub['hub_serving_s']:.0f} s / {hub['wec_joined_s']:.0f} s / "
            f"{hub['first_work_applied_s']:.0f} s | |"
        )
    per_its = results["hubs"][list(results["hubs"])[-1]]["memory_per_its"]
    rows += [
        f"| Memory per ITS: space pod (etcd, API server, controller-manager, syncer) / hub pods | "
        f"{per_its['space_pod_mb']} / {per_its['hub_pods_mb']} MB ({per_its['total_mb']} MB; "
        f"this machine holds about {results['its_capacity']} ITSes) | |",
        f"| API calls per ITS, install (mutating / read) | {calls['install']['mutating']} / {calls['install']['read']} | |",
        f"| API calls per ITS, no-op re-run (mutating / read) | {calls['noop_rerun']['mutating']} / "
        f"{calls['noop_rerun']['read']} | |",
        "| `helm template` seconds by ITS count | "
        + ", ".join(f"{n}: {s:.2f}" for n, s in results["render_s"].items())
        + f" ({results['render_fit']['ms_per_its']:.2f} ms per ITS, r² {results['render_fit']['r2']:.3f}) | |",
        f"| Hook start-up (`ks-its-hook --help`) | {results['hook_startup_s']:.2f} s | |",
        f"| Hook pod memory peak (cgroup), {scaling['one_pod']['its_count']} ITSes in one pod | "
        f"{results['hook_one_pod_peak_mb']:.0f} MB | |",
        f"| Hook pod memory peak (cgroup) in the {list(results['scale'])[-1]}-ITS run, default sharding | "
        f"{scaling['hook_pods'][list(results['scale'])[-1]]['peak_mb']:.0f} MB | |",
        f"| Cold toolchain build (`make tools`, empty cache) | {fmt_seconds(results['tools_cold_build_s'])} | |",
        f"| `make test` | {fmt_seconds(results['make_test_s'])} | |",
    ]
    return "\n".join(rows) + "\n"


def its_capacity(hubs: dict[str, Any]) -> int:
    """ITSes that fit in this machine's memory beside the sandbox, at the measured cost of one."""
    per_its = hubs[list(hubs)[-1]]["memory_per_its"]["total_mb"]
    available_kb = int(re.findall(r"MemAvailable:\s+(\d+)", Path("/proc/meminfo").read_text())[0])
    return int(available_kb / 1024 / per_its)


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "not recorded on this machine"
    return f"{int(value) // 60} min {int(value) % 60} s"


def quote_in_readme(table: str) -> None:
    text = README.read_text()
    start, end = text.index(MARKERS[0]) + len(MARKERS[0]), text.index(MARKERS[1])
    README.write_text(text[:start] + "\n" + table + text[end:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "bench")
    parser.add_argument("--trials", type=int, default=20, help="readiness trials (default 20)")
    # Every ITS runs a real OCM hub (about 0.7 GB with its API server): 10 fit this machine with room.
    parser.add_argument("--counts", default="1,5,10", help="ITS counts of the scale runs")
    parser.add_argument("--hub-counts", default="1,5", help="ITS counts of the WEC and ManifestWork runs")
    parser.add_argument("--delay", type=float, default=20.0, help="space start-up delay D, seconds")
    parser.add_argument(
        "--render-counts",
        default="1,10,100,500",
        help="ITS counts of the render runs, at least two different ones (a line is fitted)",
    )
    parser.add_argument("--no-readme", action="store_true", help="do not update README.md")
    args = parser.parse_args(argv)
    try:
        counts = [int(c) for c in args.counts.split(",")]
        hub_counts = [int(c) for c in args.hub_counts.split(",")]
        render_counts = [int(c) for c in args.render_counts.split(",")]
    except ValueError:
        parser.error("--counts and --render-counts are comma-separated integers")
    if len(set(render_counts)) < 2:
        parser.error("--render-counts needs at least two different counts to fit a line")
    root = REPO / ".cache" / "sandbox-bench"
    started = time.monotonic()
    up(root)
    try:
        with tempfile.TemporaryDirectory() as helm_home:
            sandbox = Sandbox(root, api_client((root / "kubeconfig").read_text()), Path(helm_home))
            latency = readiness.run(sandbox, args.trials, log)
            scaling = scale.run(sandbox, counts, args.delay, cost_count=5 if 5 in counts else counts[0], log=log)
            hubs = ocm.run(sandbox, hub_counts, log)
            rendering = render.run(sandbox, render_counts, log)
    finally:
        down(root)
    results = {
        "readiness_latency_s": latency,
        "scale": scaling["beyond_delay_s"],
        "scale_ratio_last_to_1": scaling["ratio_last_to_first"],
        "hubs": hubs,
        "api_calls_per_its": scaling["api_calls_per_its"],
        "render_s": rendering["render_s"],
        "render_fit": rendering["render_fit"],
        "hook_startup_s": rendering["hook_startup_s"],
        "hook_one_pod_peak_mb": scaling["one_pod"]["peak_mb"],
        "tools_cold_build_s": recorded_seconds(REPO / ".cache" / "tools-cold-build-seconds"),
        "make_test_s": recorded_seconds(REPO / ".cache" / "make-test-seconds"),
        "scale_detail": scaling,
        "its_capacity": its_capacity(hubs),
        "bench_s": round(time.monotonic() - started, 1),
        "machine": machine(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (args.out / "results.md").write_text(table)
    if not args.no_readme:
        quote_in_readme(table)
    log(f"wrote {args.out / 'results.json'} and results.md in {results['bench_s']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
