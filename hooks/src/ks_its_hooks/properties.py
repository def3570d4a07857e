"""Step `customization-properties`: the namespace that holds one ConfigMap of extra properties per WEC.

The KubeStellar transport controller creates it too, so "already exists" is success and an
existing namespace is never modified.
"""

from __future__ import annotations

from . import FIELD_MANAGER, kube
from .errors import PermanentError
from .manifests import render
from .step import Context, Step

NAMESPACE = "customization-properties"


def ensure(ctx: Context) -> None:
    if ctx.space.client.get(kube.NAMESPACES, NAMESPACE) is not None:
        ctx.info("namespace exists", namespace=NAMESPACE)
        return
    manifest = render("customization-properties.yaml.j2", name=NAMESPACE, manager=FIELD_MANAGER)
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": manifest["metadata"]}
    if ctx.space.client.create(kube.NAMESPACES, body) is None:
        ctx.info("namespace was created meanwhile by another writer", namespace=NAMESPACE)
        return
    ctx.info("namespace created", namespace=NAMESPACE)


def verify(ctx: Context) -> None:
    if ctx.space.client.get(kube.NAMESPACES, NAMESPACE) is None:
        raise PermanentError(f"the space has no namespace {NAMESPACE}")


STEP = Step(
    name="customization-properties",
    ensures=f"namespace {NAMESPACE} exists in the space (created if absent, never modified)",
    verified_by=f"namespace {NAMESPACE} exists",
    ensure=ensure,
    verify=verify,
)
