"""What only a real node shows: the hook pod's whole memory (its cgroup), a pod killed for memory,
an image that cannot be pulled, a read-only root filesystem, and the image's bytecode in use."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.harness import CHART, REPORTS, PodUsage, Sandbox, container_state, create_its, install, run_hook, unique

DEFAULTS: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())


def quantity_bytes(text: str) -> int:
    quantity = re.fullmatch(r"(\d+)(Mi|Gi)", text)
    assert quantity, text
    number, unit = quantity.groups()
    return int(number) * {"Mi": 2**20, "Gi": 2**30}[unit]


def test_a_hook_pod_with_five_itses_stays_well_under_the_default_memory_limit(sandbox: Sandbox) -> None:
    """Five ITSes in one pod, each with its clusteradm init run at the same time: the pod's cgroup
    peak, against the default limit, with room to spare on a busier cluster."""
    namespace, release = unique("memory"), "ks-its"
    itses = [{"name": unique(f"mem{index}")} for index in range(5)]
    with PodUsage(sandbox, namespace, f"batch.kubernetes.io/job-name={release}-hook") as usage:
        install(sandbox, "helm3", release, namespace, itses, "--set", "hook.maxParallelPods=1")
    (peak,) = usage.peak_bytes.values()
    limit = quantity_bytes(DEFAULTS["hook"]["resources"]["limits"]["memory"])
    request = quantity_bytes(DEFAULTS["hook"]["resources"]["requests"]["memory"])
    REPORTS.append(
        f"hook pod memory: {peak / 2**20:.0f} MiB peak with 5 ITSes (request {request // 2**20} MiB, "
        f"limit {limit // 2**20} MiB)"
    )
    assert peak < 0.75 * limit, f"peak {peak / 2**20:.0f} MiB leaves too little of the {limit // 2**20} MiB limit"
    assert peak < request * 1.25, "the request should cover a pod's usual peak"
    sandbox.helm("helm3", "uninstall", release, "--namespace", namespace, "--wait")
    for its in itses:
        sandbox.delete_controlplane(its["name"])


def test_a_hook_pod_killed_for_memory_says_which_itses_it_left_undone_and_what_to_raise(sandbox: Sandbox) -> None:
    namespace, release = unique("oom"), "ks-its"
    itses = [{"name": unique("oom-a")}, {"name": unique("oom-b")}]
    result = install(
        sandbox,
        "helm3",
        release,
        namespace,
        itses,
        "--set",
        "hook.maxParallelPods=1",
        "--set",
        "hook.backoffLimit=0",
        "--set",
        "hook.resources.limits.memory=24Mi",
        "--set",
        "hook.resources.requests.memory=24Mi",
        "--timeout",
        "120s",
        check=False,
    )
    assert result.returncode != 0
    # The run's first pod (the preflight, with the same limit as every hook pod) is the one killed.
    pods = sandbox.core.list_namespaced_pod(namespace, label_selector=f"batch.kubernetes.io/job-name={release}-preflight")
    (pod,) = pods.items
    terminated = container_state(pod).terminated
    assert terminated.reason == "OOMKilled"
    message = str(terminated.message)
    assert message.startswith(f"not finished: {itses[0]['name']}, {itses[1]['name']}. ")
    assert "raise hook.resources.limits.memory" in message
    # The cleanup hook has the same limit, so it is killed too: uninstall without hooks.
    sandbox.helm("helm3", "uninstall", release, "--namespace", namespace, "--wait", "--no-hooks")
    sandbox.kubectl("delete", "namespace", namespace, "--wait=false")
    for its in itses:
        sandbox.delete_controlplane(its["name"])


def test_an_unpullable_hook_image_is_named_where_the_readme_says(sandbox: Sandbox) -> None:
    """Helm cannot be told to fail before its --timeout; the README's troubleshooting says what users
    see then, and where the image is named. This is that, as it happens."""
    namespace, release = unique("pull"), "ks-its"
    result = install(
        sandbox,
        "helm3",
        release,
        namespace,
        [{"name": unique("pull")}],
        "--timeout",
        "45s",
        "--set",
        "hook.image.repository=kubestellar/no-such-image",
        check=False,
    )
    assert result.returncode != 0
    readme = (CHART.parent / "README.md").read_text()
    # The run's first Job, the preflight, is the first to wait for the image.
    helm_error = "failed pre-install: 1 error occurred:\n\t* timed out waiting for the condition"
    assert helm_error in result.stderr
    assert (
        "`Error: failed pre-install: ... timed out waiting for the condition` and the hook pods are "
        "`ErrImagePull` or `ImagePullBackOff`" in readme
    )
    selector = f"app.kubernetes.io/instance={release},app.kubernetes.io/component in (preflight,hook)"
    assert f"kubectl describe pods -n kubeflex-system -l '{selector}'" in readme
    pods = sandbox.core.list_namespaced_pod(namespace, label_selector=selector)
    waiting = container_state(pods.items[0]).waiting
    assert waiting.reason in ("ErrImagePull", "ImagePullBackOff")
    image = f"{sandbox.registry}/kubestellar/no-such-image"
    assert image in waiting.message
    listed = sandbox.kubectl("get", "pods", "-n", namespace, "-l", selector).stdout
    assert waiting.reason in listed
    # The cleanup hook runs the same image: as the README says, uninstall without hooks, then remove the Job.
    sandbox.helm("helm3", "uninstall", release, "--namespace", namespace, "--wait", "--no-hooks")
    sandbox.kubectl("delete", "namespace", namespace, "--wait=false")


def test_the_hook_writes_only_to_tmp(sandbox: Sandbox, hook_runner: str) -> None:
    """The hook pod's root filesystem is read-only and /tmp its only writable volume: a full install,
    clusteradm included, succeeds as it is."""
    name = unique("rofs")
    sandbox.create_controlplane(name, "vcluster")
    result = run_hook(sandbox, [{"name": name}], deadline=300)
    assert result.returncode == 0, result.stderr
    assert result.termination_message == f"ready: {name}\n"
    sandbox.delete_controlplane(name)


# The hook as the image starts it, reporting each module Python had to compile from source.
BYTECODE_PROBE = """#!/usr/bin/python3
import importlib._bootstrap_external as bootstrap, runpy, sys
compiled = []
to_code = bootstrap.SourceLoader.source_to_code
def counted(self, data, path, *args, **kwargs):
    compiled.append(str(path))
    return to_code(self, data, path, *args, **kwargs)
bootstrap.SourceLoader.source_to_code = counted
try:
    runpy.run_path("/opt/ks-its/bin/ks-its-hook", run_name="__main__")
finally:
    print(f"compiled from source: {len(compiled)} {compiled[:3]}", file=sys.stderr)
    typed = sorted(m for m in sys.modules if m.startswith("kubernetes.client.api.") and not m.endswith("custom_objects_api"))
    print(f"typed API classes imported: {typed}", file=sys.stderr)
"""


def test_the_hook_runs_on_the_bytecode_its_image_ships(sandbox: Sandbox, hook_runner: str) -> None:
    """No module is compiled when a pod starts: when the image's bytecode did not match its sources,
    every run compiled the hook's 414 modules again, 0.7 s of CPU; and the runtime's standard library
    had no bytecode (110 modules a run, 0.3 s)."""
    its = create_its(sandbox, unique("pyc"), "external")
    result = run_hook(sandbox, [its], files={"ks-its-hook": BYTECODE_PROBE})
    assert result.returncode == 0, result.stderr
    assert "compiled from source: 0 []" in result.stderr.splitlines(), result.stderr[-2000:]
    # Nor does it import the client's typed API classes (CoreV1Api and the like build some 300 pydantic
    # models and validators when imported, 0.8 s of CPU): built-in kinds go through ks_its_hooks.kube.
    assert "typed API classes imported: []" in result.stderr.splitlines(), result.stderr[-2000:]
