"""A failed install tells the user which ITS failed, at which step and why, where they look:
the hook Job's Events (`kubectl describe job`), the ControlPlane's status annotation, the pods'
termination messages; and a permanent failure ends the Job at once instead of being retried."""

from __future__ import annotations

import re
import time

from kubernetes import client

from tests.harness import CHART, Sandbox, container_state, install, unique

READINESS_TIMEOUT = 600  # the chart's default: a permanent failure must not wait for it


def test_a_permanent_failure_fails_the_job_at_once_and_says_why_where_users_look(sandbox: Sandbox) -> None:
    namespace, release, name = unique("permanent"), "ks-its", unique("pf")
    started = time.monotonic()
    # An external ITS whose bootstrap Secret nobody created.
    result = install(sandbox, "helm3", release, namespace, [{"name": name, "type": "external"}], check=False)
    took = time.monotonic() - started
    assert result.returncode != 0
    assert "PodFailurePolicy" in result.stderr, result.stderr
    assert took < READINESS_TIMEOUT / 2, "a permanent failure must not wait for the deadline"
    line = f"ITS {name}: step space failed: bootstrap Secret {namespace}/{name}-bootstrap not found"

    job = client.BatchV1Api(sandbox.api).read_namespaced_job(f"{release}-hook", namespace)
    failed = next(c for c in job.status.conditions if c.type == "Failed")
    assert failed.status == "True" and failed.reason == "PodFailurePolicy"
    pods = sandbox.core.list_namespaced_pod(namespace, label_selector=f"batch.kubernetes.io/job-name={release}-hook")
    assert len(pods.items) == 1, "no retry of a permanent failure"
    terminated = container_state(pods.items[0]).terminated
    assert (terminated.exit_code, terminated.message) == (3, line + "\n")
    # The README's one command for every failed ITS's line prints it.
    readme = (CHART.parent / "README.md").read_text()
    command = re.search(
        r"`(kubectl get pods -n kubeflex-system -l batch\.kubernetes\.io/job-name=ks-its-hook -o "
        r"jsonpath=[^`]+)`",
        readme,
    )
    assert command, "README's troubleshooting has no command for the failed ITSes' lines"
    printed = sandbox.run("bash", "-c", command.group(1).replace("kubeflex-system", namespace)).stdout
    assert printed == line + "\n"

    described = sandbox.kubectl("describe", "job", f"{release}-hook", "-n", namespace).stdout
    assert line in described
    cp = sandbox.controlplane(name) or {}
    assert cp["metadata"]["annotations"]["its.kubestellar.io/status"] == (
        f"Failed: space: bootstrap Secret {namespace}/{name}-bootstrap not found"
    )
    assert "kflex.kubestellar.io/cptype" not in (cp["metadata"].get("labels") or {})
    sandbox.helm("helm3", "uninstall", release, "--namespace", namespace, "--wait")
    sandbox.delete_controlplane(name)
