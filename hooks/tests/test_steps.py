"""Pure logic of the steps: what counts as ready, what is transient, what is written."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import pytest
import urllib3
from ks_its_hooks import cli, ocm_hub, pipeline, registration, space
from ks_its_hooks.deadline import Deadline
from ks_its_hooks.errors import PermanentError, is_transient
from ks_its_hooks.log import EventLog, format_event
from ks_its_hooks.spec import HookConfig, ItsSpec
from kubernetes.client.exceptions import ApiException

VCLUSTER = ItsSpec("its1", "vcluster", True, None)
HOST = ItsSpec("its2", "host", True, None)


def cp(cp_type: str, ready: str | None = None, reason: str = "Available", **status: object) -> dict[str, object]:
    conditions = [{"type": "Ready", "status": ready, "reason": reason}] if ready else []
    return {"metadata": {"name": "its1"}, "spec": {"type": cp_type}, "status": {"conditions": conditions, **status}}


def test_credentials_follow_the_type_and_prefer_status_in_cluster_key() -> None:
    assert space.credentials_ref(VCLUSTER, cp("vcluster")) == space.CredentialsRef(
        "vc-vcluster", "its1-system", "config-incluster")
    # status.secretRef.key says "kubeconfig" for host, which is absent: inClusterKey wins.
    ref = {"name": "admin-kubeconfig", "namespace": "its2-system", "key": "kubeconfig",
           "inClusterKey": "kubeconfig-incluster"}
    assert space.credentials_ref(HOST, cp("host", secretRef=ref)).key == "kubeconfig-incluster"


def test_controlplane_ready_only_on_ready_true_and_wrong_type_is_permanent() -> None:
    assert space.controlplane_pending(VCLUSTER, {}) == "ControlPlane does not exist yet"
    assert "Creating" in (space.controlplane_pending(VCLUSTER, {"its1": cp("vcluster", "False", "Creating")}) or "")
    assert space.controlplane_pending(VCLUSTER, {"its1": cp("vcluster", "True")}) is None
    with pytest.raises(PermanentError, match="has type host, the ITS says vcluster"):
        space.controlplane_pending(VCLUSTER, {"its1": cp("host", "True")})


def test_secret_must_carry_the_in_cluster_key() -> None:
    ref = space.CredentialsRef("vc-vcluster", "its1-system", "config-incluster")
    assert "does not exist" in (space.secret_pending(ref, {}) or "")
    only_external = {"vc-vcluster": {"data": {"config": "eA=="}}}
    assert space.secret_pending(ref, only_external) == "Secret its1-system/vc-vcluster has no key config-incluster yet"
    assert space.secret_pending(ref, {"vc-vcluster": {"data": {"config-incluster": "eA=="}}}) is None


def test_invalid_kubeconfig_is_permanent_and_says_nothing_of_its_content() -> None:
    with pytest.raises(PermanentError) as err:
        space.client_for("token: s3cr3t-value\n")
    assert "s3cr3t" not in str(err.value)


@pytest.mark.parametrize(("exc", "transient"), [
    (ApiException(status=503), True),
    (ApiException(status=429), True),
    (ApiException(status=409), True),
    (ApiException(status=0), True),
    (ApiException(status=403), False),
    (ApiException(status=404), False),
    (urllib3.exceptions.MaxRetryError(None, "/", ConnectionRefusedError()), True),
    (ConnectionResetError(), True),
    (PermanentError("no"), False),
    (ValueError("x"), False),
])
def test_transient_errors_are_told_from_permanent_ones(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_already_exists_is_not_retried() -> None:
    exc = ApiException(status=409)
    exc.body = json.dumps({"kind": "Status", "reason": "AlreadyExists"})
    assert not is_transient(exc)


def test_hub_is_ready_only_when_applied_and_every_crd_established() -> None:
    established = {name: {"status": {"conditions": [{"type": "Established", "status": "True"}]}}
                   for name in ocm_hub.HUB_CRDS}
    assert ocm_hub.crds_pending(established) is None
    missing = dict(established)
    missing["manifestworks.work.open-cluster-management.io"] = {"status": {"conditions": []}}
    assert ocm_hub.crds_pending(missing) == "CRDs not Established: manifestworks.work.open-cluster-management.io"
    applied = {"cluster-manager": {"status": {"conditions": [{"type": "Applied", "status": "True"}]}}}
    assert ocm_hub.clustermanager_pending(applied) is None
    assert ocm_hub.clustermanager_pending({}) == "ClusterManager cluster-manager does not exist"


def test_clusteradm_command_passes_registry_and_bundle_only_when_set() -> None:
    config = HookConfig((), 60, "", "default")
    assert ocm_hub.init_command(config, "/k") == ["clusteradm", "init", "--kubeconfig", "/k", "--bundle-version", "default"]
    mirror = HookConfig((), 60, "mirror.local/ocm", "v0.13.1")
    assert ocm_hub.init_command(mirror, "/k")[-2:] == ["--image-registry", "mirror.local/ocm"]


def test_clusteradm_output_is_redacted() -> None:
    text = "clusteradm join --hub-token abc.0123456789abcdef --hub-apiserver https://x\ntoken: eyJhbGciOiJSUzI1NiJ9.payload.sig"
    redacted = ocm_hub.redact(text)
    assert "0123456789abcdef" not in redacted and "eyJhbGciOiJSUzI1NiJ9" not in redacted
    assert "--hub-apiserver https://x" in redacted


def test_private_kubeconfig_is_0600_and_removed() -> None:
    with ocm_hub.private_kubeconfig("secret") as path:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert not os.path.exists(path) and not os.path.exists(os.path.dirname(path))


def test_registration_is_written_once_and_a_failure_keeps_an_existing_label() -> None:
    fresh = {"metadata": {"name": "its1"}}
    labels, annotations = registration.desired_metadata(fresh, "Ready", 0) or ({}, {})
    assert labels == {"kflex.kubestellar.io/cptype": "its"}
    assert annotations == {"its.kubestellar.io/status": "Ready", "its.kubestellar.io/status-time": "1970-01-01T00:00:00Z"}
    done = {"metadata": {"labels": labels, "annotations": annotations}}
    assert registration.desired_metadata(done, "Ready", 99) is None  # idempotent: nothing to write
    failed_later = registration.desired_metadata(done, "Failed: space: x", 99)
    assert failed_later is not None and failed_later[0] == labels
    never_ready = registration.desired_metadata(fresh, "Failed: space: x", 0)
    assert never_ready is not None and never_ready[0] == {}


def test_log_lines_are_logfmt_with_its_and_step() -> None:
    line = format_event("info", "its1", "space", 'waiting for "x"', {"waited_s": 1.5, "missing": "a b"}, 0.25)
    assert line == ('time=1970-01-01T00:00:00.250Z level=info its=its1 step=space msg="waiting for \\"x\\"" '
                    'waited_s=1.5 missing="a b"')
    stream = io.StringIO()
    EventLog("its9", stream).warn("ocm-hub", "retrying")
    assert stream.getvalue().count("\n") == 1 and "its=its9 step=ocm-hub" in stream.getvalue()


def test_deadline_counts_down_on_its_clock() -> None:
    now = [100.0]
    deadline = Deadline(10, clock=lambda: now[0])
    now[0] = 104.0
    assert deadline.remaining() == 6.0 and not deadline.expired()
    now[0] = 111.0
    assert deadline.expired() and deadline.remaining() == 0.0


def test_a_not_synced_controlplane_says_why() -> None:
    pending_cp = cp("external", "False", "Creating")
    pending_cp["status"]["conditions"].append(  # type: ignore[index]
        {"type": "Synced", "status": "False", "reason": "ReconcileError", "message": "dial tcp: refused"})
    assert space.controlplane_pending(ItsSpec("its1", "external", True, None), {"its1": pending_cp}) == (
        "ControlPlane not Ready (Creating); Synced=False (ReconcileError dial tcp: refused)")


def test_missing_hosting_credentials_is_one_clear_line_and_exit_2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "its.json"
    config.write_text(json.dumps({"itses": [{"name": "its1", "type": "vcluster", "installClusteradm": True}],
                                  "deadlineSeconds": 5, "ocm": {"imageRegistry": "", "bundleVersion": "v1"}}))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    assert cli.main(["install", "--config", str(config)]) == 2
    assert capsys.readouterr().err.startswith("ks-its-hook: no credentials for the hosting cluster: ")


def test_a_failing_step_becomes_one_line_naming_the_its_and_the_step() -> None:
    out = io.StringIO()
    with pipeline._Steps(VCLUSTER, EventLog("its1", out)) as steps:
        steps.step = ocm_hub.STEP
        raise PermanentError("the space has no ClusterManager")
    assert str(steps.failure) == f"ITS its1: step {ocm_hub.STEP} failed: the space has no ClusterManager"
    assert f"step={ocm_hub.STEP}" in out.getvalue() and "error=PermanentError" in out.getvalue()
    with pytest.raises(KeyboardInterrupt), pipeline._Steps(VCLUSTER, EventLog("its1", io.StringIO())):
        raise KeyboardInterrupt  # an interrupt is not a step's failure: it must not be swallowed
