"""The hook package against the real sandbox: each type, install_clusteradm true and false, late
kubeconfig keys and API servers, a space that never becomes ready, idempotent re-runs."""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from ks_its_hooks import kube, readiness
from ks_its_hooks.deadline import Deadline
from ks_its_hooks.log import EventLog
from kubernetes import client

from tests.harness import HOOK_AGENT, HOOK_RUNNER_USER, Sandbox, assert_ready_its, create_its, mutating, run_hook, unique
from tests.sandbox.kube import api_client
from tests.sandbox.servers import ApiServer, Etcd

CONFIGMAPS = kube.Kind("v1", "configmaps", "ConfigMap")


def test_two_itses_at_once_and_a_noop_rerun_writes_nothing(sandbox: Sandbox, hook_runner: Path, tmp_path: Path) -> None:
    itses = [create_its(sandbox, unique("hk-pair"), "vcluster") for _ in range(2)]
    first = run_hook(sandbox, itses)
    assert first.returncode == 0, first.stderr
    # One event per line, each naming the one ITS it is about, though both ITSes log at once.
    lines = first.stderr.strip().splitlines()
    named = [re.findall(r"(?:^| )its=(\S+)", line) for line in lines]
    assert lines and all(len(names) == 1 for names in named), first.stderr
    for its in itses:
        assert_ready_its(sandbox, its["name"])
        own = [line for line, names in zip(lines, named, strict=True) if names == [its["name"]]]
        assert own and 'msg="ITS ready"' in own[-1]
    time.sleep(1.1)  # audit timestamps have one-second resolution
    since = time.time()
    second = run_hook(sandbox, itses)
    assert second.returncode == 0, second.stderr
    assert "not running clusteradm init" in second.stderr
    assert "status add-on release is up to date; not running helm" in second.stderr
    time.sleep(0.5)
    hosting = sandbox.audit(since)
    assert mutating(hosting, HOOK_RUNNER_USER) == []
    assert [e for e in hosting if e["user"]["username"] == HOOK_RUNNER_USER], "the re-run made no request at all?"
    for its in itses:
        # The hook's own requests, and those of the helm it runs (which reads the release).
        space = [e for e in sandbox.space_audit(since, its["name"]) if e.get("userAgent", "").startswith((HOOK_AGENT, "Helm/"))]
        assert space, "the re-run never reached the space?"
        assert any(e["userAgent"].startswith("Helm/") for e in space), "helm never read the release?"
        assert mutating(space) == []
        # It asked the hub's webhooks, with dry runs, which store nothing.
        assert any("dryRun=All" in e.get("requestURI", "") for e in space)
    # `check` (helm test) verifies the same steps, and only reads.
    time.sleep(1.1)
    since = time.time()
    checked = run_hook(sandbox, itses, command="check")
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr.count('msg="ITS ready"') == 2
    time.sleep(0.5)
    assert mutating(sandbox.audit(since), HOOK_RUNNER_USER) == []
    for its in itses:
        assert mutating(sandbox.space_audit(since, its["name"]), agent=HOOK_AGENT) == []


def test_install_clusteradm_false_without_a_hub_fails_at_once_saying_what_to_do(
    sandbox: Sandbox, hook_runner: Path, tmp_path: Path
) -> None:
    # With a hub someone installed: tests/test_ocm.py::test_install_clusteradm_false_serves_with_a_hub_someone_installed_first
    bare = create_its(sandbox, unique("hk-bare"), "vcluster")
    # A permanent failure returns at once; the deadline only has to let the space come up first.
    result = run_hook(sandbox, [{**bare, "install_clusteradm": False}], deadline=120)
    assert result.returncode == 3  # permanent: a retry of the pod would fail the same way
    assert result.stderr.strip().splitlines()[-1] == (
        f"ITS {bare['name']}: step ocm-hub failed: install_clusteradm is false but the space has no ClusterManager "
        "cluster-manager: install OCM there first or set install_clusteradm to true"
    )
    cp = sandbox.controlplane(bare["name"])
    assert cp is not None
    assert "kflex.kubestellar.io/cptype" not in (cp["metadata"].get("labels") or {})
    assert cp["metadata"]["annotations"]["its.kubestellar.io/status"].startswith("Failed: ocm-hub:")


def test_space_coming_up_late_is_waited_for(sandbox: Sandbox, hook_runner: Path, tmp_path: Path) -> None:
    name = unique("hk-late")
    sandbox.set_faults(name, start_delay_s=12)
    try:
        its = create_its(sandbox, name, "vcluster")
        result = run_hook(sandbox, [its])
        assert result.returncode == 0, result.stderr
        # Progress is visible while it waits: when the wait starts, then what, and for how long so far.
        waits = [float(m) for m in re.findall(r'msg="waiting for ControlPlane \S+ Ready" waited_s=(\S+)', result.stderr)]
        assert len(waits) >= 2 and waits[0] < 5 and max(waits) >= 9, result.stderr
    finally:
        sandbox.clear_faults(name)


def test_never_ready_fails_at_the_deadline_and_the_other_its_completes(
    sandbox: Sandbox, hook_runner: Path, tmp_path: Path
) -> None:
    stuck, fine = unique("hk-stuck"), unique("hk-fine")
    sandbox.set_faults(stuck, never_ready=True)
    # Ample for the healthy ITS (an external ITS: this worker's external cluster's hub, seconds once it
    # exists) on a loaded machine: what is measured is that the stuck one waited for the deadline, not
    # how long anything took.
    deadline = 120
    try:
        itses = [create_its(sandbox, stuck, "vcluster"), create_its(sandbox, fine, "external")]
        result = run_hook(sandbox, itses, deadline=deadline)
        assert result.returncode == 1, result.stderr  # not permanent: a later run (helm upgrade) may get past it
        last = result.stderr.strip().splitlines()[-1]
        waited = re.match(
            rf"ITS {stuck}: step space failed: timed out after (\d+)s waiting for ControlPlane {stuck} "
            r"Ready: ControlPlane not Ready \(Unavailable\)$",
            last,
        )
        assert waited, last
        assert int(waited.group(1)) >= deadline
        assert_ready_its(sandbox, fine)
    finally:
        sandbox.clear_faults(stuck)


def test_waits_see_objects_by_list_and_by_watch_as_plain_json(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """One object exists before the wait (found by the list), one is created after the list (found
    by the watch from the list's resourceVersion); both come back as plain JSON, not client models."""
    before, after = unique("hk-list"), unique("hk-watch")
    lists: list[dict[str, Any]] = []
    real_list = readiness.list_objects

    def create_after_first_list(list_fn: Any, **params: Any) -> dict[str, Any]:
        listed = real_list(list_fn, **params)
        lists.append(listed)
        if len(lists) == 1:
            sandbox.core.create_namespaced_config_map(
                "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=after), data={"seen": "by watch"})
            )
        return listed

    sandbox.core.create_namespaced_config_map(
        "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=before), data={"seen": "by list"})
    )
    monkeypatch.setattr(readiness, "list_objects", create_after_first_list)
    events = io.StringIO()
    try:
        found = readiness.wait_until(
            kube.lister(sandbox.api, CONFIGMAPS, "default"),
            lambda objects: None if {before, after} <= objects.keys() else "not both yet",
            Deadline(30),
            EventLog("test", events),
            "test",
            "both ConfigMaps",
        )
    finally:
        for name in (before, after):
            with contextlib.suppress(client.ApiException):  # `after` is missing if the first list failed
                sandbox.core.delete_namespaced_config_map(name, "default")
    assert len(lists) == 1, events.getvalue()
    assert before in {item["metadata"]["name"] for item in lists[0]["items"]}
    assert after not in {item["metadata"]["name"] for item in lists[0]["items"]}
    assert type(found[before]) is dict and found[before]["data"] == {"seen": "by list"}
    assert type(found[after]) is dict and found[after]["data"] == {"seen": "by watch"}


def test_a_watch_from_a_compacted_resource_version_lists_again(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """410 Gone, for real: etcd is compacted between the wait's list and its watch, on an API server
    without a watch cache (so its watches read etcd). The wait must list again and find the object."""
    etcd_url = json.loads((sandbox.root / "state.json").read_text())["etcd"]
    etcd = Etcd(tmp_path, port=int(etcd_url.rsplit(":", 1)[1]))
    server = ApiServer(unique("no-watch-cache"), tmp_path, etcd, watch_cache=False)
    server.start()
    try:
        core = client.CoreV1Api(api_client(server.admin_kubeconfig()))
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="waits")))
        wanted = unique("hk-gone")
        lists: list[dict[str, Any]] = []
        compacted: list[int] = []
        real_list = readiness.list_objects

        def compact_after_first_list(list_fn: Any, **params: Any) -> dict[str, Any]:
            listed = real_list(list_fn, **params)
            lists.append(listed)
            if len(lists) == 1:
                core.create_namespaced_config_map("waits", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=wanted)))
                # A second write: compaction keeps its own revision, so the create's must fall below it.
                core.patch_namespaced_config_map(wanted, "waits", {"data": {"written": "twice"}})
                compacted.append(etcd.compact())
            return listed

        monkeypatch.setattr(readiness, "list_objects", compact_after_first_list)
        events = io.StringIO()
        found = readiness.wait_until(
            kube.lister(core.api_client, CONFIGMAPS, "waits"),
            lambda objects: None if wanted in objects else "not created yet",
            Deadline(30),
            EventLog("test", events),
            "test",
            "the ConfigMap",
        )
    finally:
        server.stop()
    log = events.getvalue()
    # The watch starts after the listed revision; etcd refuses it only if that is below the compaction.
    assert int(lists[0]["metadata"]["resourceVersion"]) + 1 < compacted[0], log
    assert len(lists) == 2, log
    assert wanted in found
    assert "watch restarted" in log and "API error 410" in log, log
