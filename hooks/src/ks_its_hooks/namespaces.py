"""Step `namespaces`: the space's namespace `<name>-system` exists and is KubeFlex's for the ITS's
ControlPlane (KubeFlex made it, so the ControlPlane owns it). The run's first Job waits for this: the
RoleBindings that let the hook read the space's credentials are made there next, and a namespace
that KubeFlex did not make (it takes an existing one as it is) must not get them."""

from __future__ import annotations

import functools
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from . import kube
from .errors import PermanentError
from .kubeflex import CP_GROUP, CP_PLURAL, CP_VERSION, system_namespace
from .step import Context, Step


def controlplane_owner(namespace: dict[str, Any]) -> dict[str, Any] | None:
    """The ControlPlane that controls the namespace (KubeFlex sets it when it makes one), if any."""
    for ref in (namespace.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == "ControlPlane" and str(ref.get("apiVersion", "")).startswith(f"{CP_GROUP}/") \
                and ref.get("controller"):
            return dict(ref)
    return None


def namespace_pending(its: str, controlplane_uid: str, objects: dict[str, dict[str, Any]]) -> str | None:
    """None once the namespace is KubeFlex's for this ControlPlane; raises when it is not KubeFlex's."""
    name = system_namespace(its)
    namespace = objects.get(name)
    if namespace is None:
        return f"namespace {name} does not exist yet (KubeFlex makes it)"
    owner = controlplane_owner(namespace)
    if owner is None or owner.get("name") != its:
        held = f"ControlPlane {owner['name']}'s" if owner else "not made by KubeFlex"
        raise PermanentError(f"namespace {name} is {held}: it existed before ControlPlane {its}, and KubeFlex "
                             "takes an existing namespace as the space's as it is; remove this ITS and give it another name")
    if owner.get("uid") != controlplane_uid:
        # Deleted with an earlier ControlPlane of the same name: KubeFlex makes a new one once it is gone.
        return f"namespace {name} is still being deleted with an earlier ControlPlane {its}"
    if (namespace.get("metadata") or {}).get("deletionTimestamp"):
        return f"namespace {name} is being deleted"
    return None


def controlplane_uid(ctx: Context) -> str:
    custom = client.CustomObjectsApi(ctx.hosting)
    try:
        controlplane = cast(dict[str, Any], ctx.call(lambda: custom.get_cluster_custom_object(
            CP_GROUP, CP_VERSION, CP_PLURAL, ctx.its.name), "reading the ControlPlane"))
    except ApiException as err:
        if err.status == 404:
            raise PermanentError(f"ControlPlane {ctx.its.name} does not exist") from err
        raise
    return str(controlplane["metadata"]["uid"])


def ensure(ctx: Context) -> None:
    name = system_namespace(ctx.its.name)
    uid = controlplane_uid(ctx)
    ctx.info("waiting for the space's namespace", namespace=name)
    ctx.wait_until(kube.lister(ctx.hosting, kube.NAMESPACES), functools.partial(namespace_pending, ctx.its.name, uid),
                   f"namespace {name}", field_selector=f"metadata.name={name}")
    ctx.info("the space's namespace is KubeFlex's", namespace=name, waited_s=round(ctx.deadline.elapsed(), 2))


STEP = Step(
    name="namespaces",
    ensures="the space's namespace <name>-system exists and KubeFlex made it for the ITS's ControlPlane",
    verified_by="the same wait, which only reads",
    ensure=ensure,
    verify=ensure,
)
