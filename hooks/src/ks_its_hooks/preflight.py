"""The preflight, run before the release applies anything (a pre-install, pre-upgrade and pre-rollback
hook): refuse an ITS whose space namespace exists and is not KubeFlex's for it. KubeFlex v0.9.3 takes
an existing namespace as the space's as it is: an ITS named `kube` would put its space in kube-system.
Once the ControlPlane is applied that has happened, so the check runs before. Only the namespace is
read: one KubeFlex made names its ControlPlane as its controller."""

from __future__ import annotations

from typing import Any

from . import kube
from .errors import PermanentError
from .namespaces import controlplane_owner
from .spec import ItsSpec
from .step import Context, Step


def refusal(its: ItsSpec, namespace: dict[str, Any] | None) -> str | None:
    """Why the ITS must not be applied, or None. A namespace controlled by a ControlPlane of the ITS's
    name is KubeFlex's (the ITS's own, or one still being deleted with an earlier ControlPlane of that
    name, which KubeFlex waits for)."""
    if namespace is None:
        return None
    owner = controlplane_owner(namespace)
    if owner is not None and owner.get("name") == its.name:
        return None
    held = f"ControlPlane {owner['name']}'s" if owner else "not KubeFlex's"
    return (
        f"namespace {its.space.namespace} already exists and is {held}: KubeFlex would take it as the space's "
        f"namespace of ControlPlane {its.name} as it is; give the ITS another name"
    )


def ensure(ctx: Context) -> None:
    namespace = ctx.hosting.get(kube.NAMESPACES, ctx.its.space.namespace)
    why = refusal(ctx.its, namespace)
    if why is not None:
        raise PermanentError(why)
    ctx.info(
        "the space's namespace is free for KubeFlex" if namespace is None else "the space's namespace is KubeFlex's",
        namespace=ctx.its.space.namespace,
    )


STEP = Step(
    name="preflight",
    ensures="the ITS's space namespace does not exist, or KubeFlex made it for the ITS's ControlPlane",
    verified_by="the same read",
    ensure=ensure,
    verify=ensure,
)
