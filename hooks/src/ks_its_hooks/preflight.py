"""The preflight, run before the release applies anything (a pre-install, pre-upgrade and pre-rollback
hook): refuse an ITS whose namespace `<name>-system` exists and is not KubeFlex's for it. KubeFlex
v0.9.3 takes an existing namespace as the space's as it is: an ITS named `kube` would put its space
in kube-system. Once the ControlPlane is applied that has happened, so the check runs before. Only the
namespace is read: one KubeFlex made names its ControlPlane as its controller."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from . import kube
from .deadline import Deadline, call
from .errors import Failure, PermanentError, failure
from .kubeflex import system_namespace
from .log import EventLog
from .namespaces import controlplane_owner

STEP = "preflight"
# A few reads; what cannot answer in this time will not answer Helm either.
DEADLINE_SECONDS = 60


def refusal(its: str, namespace: dict[str, Any] | None) -> str | None:
    """Why the ITS must not be applied, or None. A namespace controlled by a ControlPlane of the ITS's
    name is KubeFlex's (the ITS's own, or one still being deleted with an earlier ControlPlane of that
    name, which KubeFlex waits for)."""
    if namespace is None:
        return None
    owner = controlplane_owner(namespace)
    if owner is not None and owner.get("name") == its:
        return None
    name = system_namespace(its)
    held = f"ControlPlane {owner['name']}'s" if owner else "not KubeFlex's"
    return (f"namespace {name} already exists and is {held}: KubeFlex would take it as the space's namespace "
            f"of ControlPlane {its} as it is; give the ITS another name")


def read(fn: Callable[[], Any], deadline: Deadline, log: EventLog, what: str) -> Any:
    """fn's object, or None when it does not exist; retried as every call is."""
    try:
        return call(fn, deadline, log, STEP, what)
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def check(hosting: client.ApiClient, its: str, log: EventLog) -> Failure | None:
    deadline = Deadline(DEADLINE_SECONDS)
    name = system_namespace(its)
    try:
        namespace = read(lambda: kube.get(hosting, kube.NAMESPACES, name), deadline, log, f"reading namespace {name}")
        why = refusal(its, namespace)
        if why is not None:
            raise PermanentError(why)
    except Exception as err:  # as in pipeline.run: every failure becomes the ITS's line
        failed = failure(its, STEP, err)
        log.error(STEP, failed.line, error=type(err).__name__, permanent=failed.permanent)
        return failed
    existing = "exists" if namespace is not None else "does not exist yet"
    log.info(STEP, f"namespace {name} {existing}; KubeFlex may make the space there", namespace=name)
    return None
