"""Step `customization-properties`: the namespace that holds one ConfigMap of extra properties per WEC.

The KubeStellar transport controller creates it too, so "already exists" is success and an
existing namespace is never modified.
"""

from __future__ import annotations

from kubernetes.client.exceptions import ApiException

from . import FIELD_MANAGER, kube
from .errors import PermanentError
from .manifests import render
from .step import Context, Step

NAMESPACE = "customization-properties"


def exists(ctx: Context) -> bool:
    try:
        ctx.call(lambda: kube.get(ctx.space.api, kube.NAMESPACES, NAMESPACE), "reading the namespace")
    except ApiException as err:
        if err.status == 404:
            return False
        raise
    return True


def ensure(ctx: Context) -> None:
    if exists(ctx):
        ctx.info("namespace exists", namespace=NAMESPACE)
        return
    manifest = render("customization-properties.yaml.j2", name=NAMESPACE, manager=FIELD_MANAGER)
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": manifest["metadata"]}
    try:
        ctx.call(lambda: kube.create(ctx.space.api, kube.NAMESPACES, body, field_manager=FIELD_MANAGER),
                 "creating the namespace")
    except ApiException as err:
        if err.status != 409:
            raise
        ctx.info("namespace was created meanwhile by another writer", namespace=NAMESPACE)
        return
    ctx.info("namespace created", namespace=NAMESPACE)


def verify(ctx: Context) -> None:
    if not exists(ctx):
        raise PermanentError(f"the space has no namespace {NAMESPACE}")


STEP = Step(
    name="customization-properties",
    ensures=f"namespace {NAMESPACE} exists in the space (created if absent, never modified)",
    verified_by=f"namespace {NAMESPACE} exists",
    ensure=ensure,
    verify=verify,
)
