"""Step `space`: reach the space through the in-cluster kubeconfig KubeFlex wrote; never fall back
to other credentials (upstream's hooks did, and failed with confusing permission errors)."""

from __future__ import annotations

import base64
import functools
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from . import USER_AGENT, kube, kubeflex
from .errors import PermanentError
from .kubeflex import CredentialsRef
from .readiness import condition_reason, condition_status
from .spec import ItsSpec
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


def secret_pending(ref: CredentialsRef, objects: dict[str, dict[str, Any]]) -> str | None:
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
    adopted_ref = kubeflex.in_cluster_credentials(ctx.its.name, ctx.its.type, {})

    def read(name: str, namespace: str) -> Any:
        try:
            return ctx.call(lambda: kube.get(ctx.hosting, kube.SECRETS, name, namespace),
                            f"reading Secret {namespace}/{name}")
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def adopted() -> bool:
        return read(adopted_ref.secret, adopted_ref.namespace) is not None

    if adopted():
        return
    secret = read(ref.name, ref.namespace)
    if secret is not None and (secret.get("data") or {}).get(ref.key):
        return
    if adopted():
        return  # adopted between the two reads
    if secret is None:
        raise PermanentError(f"bootstrap Secret {ref.namespace}/{ref.name} not found")
    raise PermanentError(f"bootstrap Secret {ref.namespace}/{ref.name} has no key {ref.key}")


def wait_controlplane(ctx: Context) -> dict[str, Any]:
    custom = client.CustomObjectsApi(ctx.hosting)
    list_fn = functools.partial(custom.list_cluster_custom_object,
                                kubeflex.CP_GROUP, kubeflex.CP_VERSION, kubeflex.CP_PLURAL)
    objects = ctx.wait_until(list_fn, functools.partial(controlplane_pending, ctx.its),
                             f"ControlPlane {ctx.its.name} Ready", field_selector=f"metadata.name={ctx.its.name}")
    return objects[ctx.its.name]


def read_kubeconfig(ctx: Context, ref: CredentialsRef) -> str:
    objects = ctx.wait_until(kube.lister(ctx.hosting, kube.SECRETS, ref.namespace), functools.partial(secret_pending, ref),
                             f"key {ref.key} in Secret {ref.namespace}/{ref.secret}",
                             field_selector=f"metadata.name={ref.secret}")
    return base64.b64decode(objects[ref.secret]["data"][ref.key]).decode()


def wait_readyz(ctx: Context, api: client.ApiClient) -> None:
    """Probe /readyz with the space's own credentials, so a bad token fails here, not later."""

    def probe() -> None:
        method, url, headers, _, _ = api.param_serialize("GET", "/readyz", auth_settings=["BearerToken"])
        response = api.call_api(method, url, header_params=headers,
                                _request_timeout=max(1.0, min(10.0, ctx.deadline.remaining())))
        if response.status != 200:
            raise ApiException(status=response.status, reason=response.reason)

    ctx.call(probe, "probing the space API server /readyz")


def reach(ctx: Context) -> None:
    """Read-only, so install and check share it: both need the space."""
    check_bootstrap_secret(ctx)
    ctx.info("waiting for the ControlPlane to be Ready")
    controlplane = wait_controlplane(ctx)
    ref = kubeflex.in_cluster_credentials(ctx.its.name, ctx.its.type,
                                          (controlplane.get("status") or {}).get("secretRef") or {})
    ctx.info("ControlPlane Ready; reading the in-cluster kubeconfig",
             secret=f"{ref.namespace}/{ref.secret}", key=ref.key, waited_s=round(ctx.deadline.elapsed(), 2))
    kubeconfig = read_kubeconfig(ctx, ref)
    api = client_for(kubeconfig)
    wait_readyz(ctx, api)
    ctx.info("space API server ready", waited_s=round(ctx.deadline.elapsed(), 2))
    ctx.reached = Space(api=api, kubeconfig=kubeconfig, controlplane_uid=str(controlplane["metadata"]["uid"]))


STEP = Step(
    name="space",
    ensures="the ControlPlane is Ready, its in-cluster kubeconfig exists and the space API server answers",
    verified_by="the same waits, which only read",
    ensure=reach,
    verify=reach,
)
