"""What the hook does as a pod of the release, outside any ITS's steps, each under a short deadline of
its own and the one retry policy: when the run began (its first Job's start), each failed ITS as an
Event on the pod's Job (where `kubectl describe job` shows it), and `cleanup`, the pre-delete hook,
which deletes the release's Jobs and the helm test pod, which Helm never deletes with the release."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from kubernetes.client import ApiClient

from . import FIELD_MANAGER, kube
from .client import Client
from .deadline import Deadline
from .errors import Failure, cause
from .log import EventLog

T = TypeVar("T")

# Long enough for retries through a short outage of the hosting API server, short enough not to hold
# up a pod whose ITSes are done.
SECONDS = 30


def pod_client(hosting: ApiClient, what: str) -> Client:
    """A client for the pod's own requests: their lines carry `its=-` (no ITS) and step=`what`."""
    return Client(hosting, Deadline(SECONDS), EventLog("-"), lambda: what)


def job_start(hosting: ApiClient, namespace: str, job: str) -> str | None:
    """The Job's status.startTime (RFC 3339), if it has started."""
    found = pod_client(hosting, "run").get(kube.JOBS, job, namespace) or {}
    started = (found.get("status") or {}).get("startTime")
    return str(started) if started else None


def report_failures(hosting: ApiClient, namespace: str, job: str, failures: Sequence[Failure]) -> None:
    api = pod_client(hosting, "report")
    found = api.get(kube.JOBS, job, namespace)
    if found is None:
        return  # deleted meanwhile: nowhere to report
    # kubectl describe finds a Job's Events by its uid.
    uid = found["metadata"]["uid"]
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for failed in failures:
        event: dict[str, Any] = {
            "metadata": {"generateName": f"{job}.", "namespace": namespace},
            "involvedObject": {"apiVersion": "batch/v1", "kind": "Job", "name": job, "namespace": namespace, "uid": uid},
            "reason": "PermanentFailure" if failed.permanent else "Failed",
            "message": failed.line,
            "type": "Warning",
            "source": {"component": FIELD_MANAGER},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "reportingComponent": FIELD_MANAGER,
            "reportingInstance": os.environ.get("POD_NAME", FIELD_MANAGER),
        }
        api.create(kube.EVENTS, event, namespace)


def cleanup(hosting: ApiClient, namespace: str, jobs: Sequence[str], test_pod: str) -> list[str]:
    """Delete the release's Jobs (their pods with them) and the helm test pod. Returns what was deleted."""
    api = pod_client(hosting, "cleanup")
    targets = [(kube.JOBS, job) for job in jobs] + [(kube.PODS, test_pod)]
    return [kind.describe(name, namespace) for kind, name in targets if api.delete(kind, name, namespace)]


def best_effort(what: str, fn: Callable[..., T], *args: Any, raises: tuple[type[Exception], ...] = ()) -> T | None:
    """The ITSes' outcome does not depend on these: a failure is reported on stderr, not raised (but
    for the kinds in `raises`)."""
    try:
        return fn(*args)
    except raises:
        raise
    except Exception as err:
        print(f"ks-its-hook: could not {what}: {cause(err)}", file=sys.stderr, flush=True)
        return None
