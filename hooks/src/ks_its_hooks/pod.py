"""What the hook does as a pod of the release besides its steps: each failed ITS becomes an Event on
the pod's Job, where `kubectl describe job` shows it; and `cleanup`, the pre-delete hook, deletes the
release's Jobs and the helm test pod, which Helm never deletes with the release."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from . import FIELD_MANAGER, kube
from .errors import Failure, cause

T = TypeVar("T")


def report_failures(hosting: client.ApiClient, namespace: str, job: str, failures: Sequence[Failure]) -> None:
    # kubectl describe finds a Job's Events by its uid.
    uid = kube.get(hosting, kube.JOBS, job, namespace)["metadata"]["uid"]
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for failed in failures:
        event: dict[str, Any] = {
            "metadata": {"generateName": f"{job}.", "namespace": namespace},
            "involvedObject": {"apiVersion": "batch/v1", "kind": "Job", "name": job, "namespace": namespace,
                               "uid": uid},
            "reason": "PermanentFailure" if failed.permanent else "Failed", "message": failed.line,
            "type": "Warning", "source": {"component": FIELD_MANAGER}, "firstTimestamp": now, "lastTimestamp": now,
            "count": 1, "reportingComponent": FIELD_MANAGER,
            "reportingInstance": os.environ.get("POD_NAME", FIELD_MANAGER)}
        kube.create(hosting, kube.EVENTS, event, namespace)


def cleanup(hosting: client.ApiClient, namespace: str, jobs: Sequence[str], test_pod: str) -> list[str]:
    """Delete the release's Jobs (their pods with them) and the helm test pod. Returns what was deleted."""
    deleted = []
    targets = [("Job", kube.JOBS, job) for job in jobs] + [("Pod", kube.PODS, test_pod)]
    for kind, resource, name in targets:
        try:
            kube.delete(hosting, resource, name, namespace, propagation_policy="Background")
            deleted.append(f"{kind} {namespace}/{name}")
        except ApiException as err:
            if err.status != 404:
                raise
    return deleted


def best_effort(what: str, fn: Callable[..., T], *args: Any,
                raises: tuple[type[Exception], ...] = ()) -> T | None:
    """The ITSes' outcome does not depend on these: a failure is reported on stderr, not raised (but
    for the kinds in `raises`)."""
    try:
        return fn(*args)
    except raises:
        raise
    except Exception as err:
        print(f"ks-its-hook: could not {what}: {cause(err)}", file=sys.stderr, flush=True)
        return None
