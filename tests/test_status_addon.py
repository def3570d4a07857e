"""KubeStellar's OCM status add-on in every ITS, installed by the hook with helm from the sandbox's
registry (a stand-in chart of the same name and shape: tests/charts/ocm-status-addon-chart)."""

from __future__ import annotations

import base64
import json
import re
import uuid

from kubernetes import client

from tests.harness import (
    Sandbox,
    assert_ready_its,
    create_its,
    run_hook,
    status_addon_pods,
    unique,
)


def test_install_status_addon_false_skips_it_and_a_chart_that_does_not_exist_fails_at_once(
    sandbox: Sandbox, hook_runner: str
) -> None:
    skipped = {**create_its(sandbox, unique("sa-skip"), "vcluster"), "install_status_addon": False}
    wanted = create_its(sandbox, unique("sa-nochart"), "external")
    missing = sandbox.status_addon_config(version="v9.9.9")
    result = run_hook(sandbox, [skipped, wanted], deadline=300, status_addon=missing)
    assert result.returncode == 3, result.stderr  # the only failure is permanent
    assert f'its={skipped["name"]} step=status-addon msg="install_status_addon is false' in result.stderr
    assert_ready_its(sandbox, skipped["name"], status_addon=False)
    [line] = [line for line in result.stderr.splitlines() if line.startswith(f"ITS {wanted['name']}:")]
    assert line == (
        f"ITS {wanted['name']}: step status-addon failed: chart {missing['chart']} version v9.9.9 does "
        "not exist in its registry (HTTP 404)"
    ), line
    assert "retrying asking the chart registry" not in result.stderr  # at once: no retry of what cannot change


def test_an_unreachable_chart_registry_is_retried_until_the_deadline_and_credentials_stay_secret(
    sandbox: Sandbox, hook_runner: str
) -> None:
    its = create_its(sandbox, unique("sa-noreg"), "vcluster")
    # First the hub, so that the deadline below is spent on the registry.
    assert run_hook(sandbox, [{**its, "install_status_addon": False}]).returncode == 0
    password = f"pw-{uuid.uuid4().hex}"
    secret = unique("pull")
    auth = base64.b64encode(f"robot:{password}".encode()).decode()
    config = json.dumps({"auths": {"10.244.0.1:1": {"auth": auth, "password": password}}})
    sandbox.core.create_namespaced_secret(
        "default",
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=secret),
            type="kubernetes.io/dockerconfigjson",
            string_data={".dockerconfigjson": config},
        ),
    )
    try:
        unreachable = sandbox.status_addon_config(
            chart="oci://10.244.0.1:1/kubestellar/ocm-status-addon-chart",
            pullSecret={"name": secret, "namespace": "default", "key": ".dockerconfigjson"},
        )
        result = run_hook(sandbox, [its], deadline=60, status_addon=unreachable)
    finally:
        sandbox.core.delete_namespaced_secret(secret, "default")
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    failed = re.fullmatch(
        rf"ITS {its['name']}: step status-addon failed: timed out after (\d+)s: cannot reach the "
        r"chart registry 10\.244\.0\.1:1: .*connection refused",
        last,
        re.IGNORECASE,
    )
    assert failed, last
    # Retried until the deadline: the last try starts before it, within one backoff (at most 5 s).
    assert int(failed.group(1)) >= 60 - 6
    assert len(re.findall(r'msg="retrying asking the chart registry 10\.244\.0\.1:1 for the chart"', result.stderr)) >= 2
    assert password not in result.stderr and auth not in result.stderr
    assert not status_addon_pods(sandbox, its["name"])
