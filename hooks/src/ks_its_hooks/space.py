"""Step `space`: reach the space through the in-cluster kubeconfig KubeFlex wrote; never fall back
to other credentials (upstream's hooks did, and failed with confusing permission errors)."""

from __future__ import annotations

import base64
import functools
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from . import USER_AGENT, kube, kubeflex
from .errors import PermanentError
from .readiness import condition_reason, condition_status
from .spec import ItsSpec, SpaceRef
from .step import Context, Space, Step


def controlplane_pending(its: ItsSpec, objects: dict[str, dict[str, Any]]) -> str | None:
    """None once the ControlPlane is Ready; raises if it is of another type than the ITS."""
    cp = objects.get(its.name)
    if cp is None:
        return "ControlPlane does not exist yet"
    actual = (cp.get("spec") or {}).get("type")
    if actual != its.type:
        raise PermanentError(f"ControlPlane {its.name} has type {actual}, the ITS says {its.type}")
    if condition_status(cp, "Ready") == "True":
        return None
    pending = f"ControlPlane not Ready ({condition_reason(cp, 'Ready') or 'no Ready condition yet'})"
    # Synced=False/ReconcileError is normal while a space boots: keep waiting, but show why.
    if condition_status(cp, "Synced") == "False":
        pending += f"; Synced=False ({condition_reason(cp, 'Synced')})"
    return pending


def secret_pending(ref: SpaceRef, objects: dict[str, dict[str, Any]]) -> str | None:
    secret = objects.get(ref.secret)
    if secret is None:
        return f"Secret {ref.namespace}/{ref.secret} does not exist yet"
    if not (secret.get("data") or {}).get(ref.key):
        return f"Secret {ref.namespace}/{ref.secret} has no key {ref.key} yet"
    return None


def client_for(kubeconfig_text: str) -> client.ApiClient:
    """A client from kubeconfig text; kept in memory (the library writes key files 0600, removed at exit)."""
    try:
        document = yaml.safe_load(kubeconfig_text)
        if not isinstance(document, dict):
            raise PermanentError("the space kubeconfig is not a kubeconfig document")
        api: client.ApiClient = config.new_client_from_config_dict(document)
    except (yaml.YAMLError, ConfigException, KeyError, TypeError, ValueError) as err:
        # The text may hold credentials: name only the kind of error.
        raise PermanentError(f"the space kubeconfig is invalid ({type(err).__name__})") from err
    api.configuration.retries = False
    api.user_agent = USER_AGENT
    return api


def check_bootstrap_secret(ctx: Context) -> None:
    """Fail at once, naming the Secret, when an external ITS cannot be adopted.

    KubeFlex deletes the bootstrap Secret once it wrote admin-kubeconfig: that is adoption, not an
    error, so the bootstrap Secret is only looked at while admin-kubeconfig is absent.
    """
    ref = ctx.its.bootstrap_secret
    if ref is None:
        return
    space = ctx.its.space

    def adopted() -> bool:
        return ctx.hosting.get(kube.SECRETS, space.secret, space.namespace) is not None

    if adopted():
        return
    secret = ctx.hosting.get(kube.SECRETS, ref.name, ref.namespace)
    if secret is not None and (secret.get("data") or {}).get(ref.key):
        return
    if adopted():
        return  # adopted between the two reads
    if secret is None:
        raise PermanentError(f"bootstrap Secret {ref.namespace}/{ref.name} not found")
    raise PermanentError(f"bootstrap Secret {ref.namespace}/{ref.name} has no key {ref.key}")


def reach(ctx: Context) -> None:
    """Read-only, so install and check share it: both need the space."""
    check_bootstrap_secret(ctx)
    controlplane = ctx.hosting.wait(
        kube.CONTROLPLANES,
        functools.partial(controlplane_pending, ctx.its),
        f"ControlPlane {ctx.its.name} Ready",
        name=ctx.its.name,
    )[ctx.its.name]
    ref = kubeflex.in_cluster_credentials(ctx.its, (controlplane.get("status") or {}).get("secretRef") or {})
    ctx.info(
        "ControlPlane Ready; reading the in-cluster kubeconfig",
        secret=f"{ref.namespace}/{ref.secret}",
        key=ref.key,
        waited_s=round(ctx.deadline.elapsed(), 2),
    )
    secrets = ctx.hosting.wait(
        kube.SECRETS,
        functools.partial(secret_pending, ref),
        f"key {ref.key} in Secret {ref.namespace}/{ref.secret}",
        ref.namespace,
        ref.secret,
    )
    kubeconfig = base64.b64decode(secrets[ref.secret]["data"][ref.key]).decode()
    space = ctx.client(client_for(kubeconfig))
    # /readyz with the space's own credentials, so that a bad token fails here, not later.
    space.request(
        "GET",
        "/readyz",
        "probing the space API server /readyz",
        text=True,
        request_timeout=max(1.0, min(10.0, ctx.deadline.remaining())),
    )
    ctx.info("space API server ready", waited_s=round(ctx.deadline.elapsed(), 2))
    ctx.reached = Space(client=space, kubeconfig=kubeconfig, controlplane_uid=str(controlplane["metadata"]["uid"]))


STEP = Step(
    name="space",
    ensures="the ControlPlane is Ready, its in-cluster kubeconfig exists and the space API server answers",
    verified_by="the same waits, which only read",
    ensure=reach,
    verify=reach,
)
