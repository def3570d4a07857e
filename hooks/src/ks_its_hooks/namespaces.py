"""Step `namespaces`: the space's namespace `<name>-system` exists and is KubeFlex's for the ITS's
ControlPlane (KubeFlex made it, so the ControlPlane owns it). The run's first Job waits for this: the
RoleBindings that let the hook read the space's credentials are made there next, and a namespace
that KubeFlex did not make (it takes an existing one as it is) must not get them."""

from __future__ import annotations

import functools
from typing import Any

from . import kube
from .errors import PermanentError
from .spec import ItsSpec
from .step import Context, Step


def controlplane_owner(namespace: dict[str, Any]) -> dict[str, Any] | None:
    """The ControlPlane that controls the namespace (KubeFlex sets it when it makes one), if any."""
    for ref in (namespace.get("metadata") or {}).get("ownerReferences") or []:
        if (ref.get("apiVersion"), ref.get("kind")) == (kube.CONTROLPLANES.group_version, kube.CONTROLPLANES.kind) and ref.get(
            "controller"
        ):
            return dict(ref)
    return None


def namespace_pending(its: ItsSpec, controlplane_uid: str, objects: dict[str, dict[str, Any]]) -> str | None:
    """None once the namespace is KubeFlex's for this ControlPlane; raises when it is not KubeFlex's."""
    name = its.space.namespace
    namespace = objects.get(name)
    if namespace is None:
        return f"namespace {name} does not exist yet (KubeFlex makes it)"
    owner = controlplane_owner(namespace)
    if owner is None or owner.get("name") != its.name:
        held = f"ControlPlane {owner['name']}'s" if owner else "not made by KubeFlex"
        raise PermanentError(
            f"namespace {name} is {held}: it existed before ControlPlane {its.name}, and KubeFlex "
            "takes an existing namespace as the space's as it is; remove this ITS and give it another name"
        )
    if owner.get("uid") != controlplane_uid:
        # Deleted with an earlier ControlPlane of the same name: KubeFlex makes a new one once it is gone.
        return f"namespace {name} is still being deleted with an earlier ControlPlane {its.name}"
    if (namespace.get("metadata") or {}).get("deletionTimestamp"):
        return f"namespace {name} is being deleted"
    return None


def ensure(ctx: Context) -> None:
    controlplane = ctx.hosting.get(kube.CONTROLPLANES, ctx.its.name)
    if controlplane is None:
        raise PermanentError(f"ControlPlane {ctx.its.name} does not exist")
    name = ctx.its.space.namespace
    ctx.hosting.wait(
        kube.NAMESPACES,
        functools.partial(namespace_pending, ctx.its, controlplane["metadata"]["uid"]),
        f"namespace {name}",
        name=name,
    )
    ctx.info("the space's namespace is KubeFlex's", namespace=name, waited_s=round(ctx.deadline.elapsed(), 2))


STEP = Step(
    name="namespaces",
    ensures="the space's namespace <name>-system exists and KubeFlex made it for the ITS's ControlPlane",
    verified_by="the same wait, which only reads",
    ensure=ensure,
    verify=ensure,
)
