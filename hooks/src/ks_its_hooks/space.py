"""Step 1: reach the space. Wait for the ControlPlane and its in-cluster kubeconfig, never fall back."""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from . import USER_AGENT
from .deadline import Deadline, call
from .errors import PermanentError
from .log import EventLog
from .readiness import condition_reason, condition_status, wait_until
from .spec import ItsSpec

STEP = "space"
CP_GROUP = "tenancy.kflex.kubestellar.org"
CP_VERSION = "v1alpha1"
CP_PLURAL = "controlplanes"


@dataclass(frozen=True)
class CredentialsRef:
    secret: str
    namespace: str
    key: str


@dataclass
class Space:
    """A reachable space: a client for it, and its kubeconfig text for clusteradm."""

    its: ItsSpec
    api: client.ApiClient
    kubeconfig: str


def credentials_ref(its: ItsSpec, controlplane: dict[str, Any]) -> CredentialsRef:
    """Where KubeFlex puts the in-cluster kubeconfig for this type of space.

    status.secretRef.key names `kubeconfig` for host/external although only the in-cluster
    key exists there, so inClusterKey is the one to use.
    """
    ref = (controlplane.get("status") or {}).get("secretRef") or {}
    if its.type == "vcluster":
        default = CredentialsRef("vc-vcluster", its.system_namespace, "config-incluster")
    else:
        default = CredentialsRef("admin-kubeconfig", its.system_namespace, "kubeconfig-incluster")
    return CredentialsRef(
        secret=ref.get("name") or default.secret,
        namespace=ref.get("namespace") or default.namespace,
        key=ref.get("inClusterKey") or default.key,
    )


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


def _check_bootstrap_secret(hosting: client.ApiClient, its: ItsSpec, deadline: Deadline, log: EventLog) -> None:
    """Fail at once, naming the Secret, when an external ITS cannot be adopted.

    KubeFlex deletes the bootstrap Secret once it wrote admin-kubeconfig: that is adoption, not an
    error, so the bootstrap Secret is only looked at while admin-kubeconfig is absent.
    """
    ref = its.bootstrap_secret
    assert ref is not None
    core = client.CoreV1Api(hosting)

    def read(name: str, namespace: str) -> Any:
        try:
            return call(lambda: core.read_namespaced_secret(name, namespace), deadline, log, STEP,
                        f"reading Secret {namespace}/{name}")
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    if read("admin-kubeconfig", its.system_namespace) is not None:
        return
    secret = read(ref.name, ref.namespace)
    if secret is not None and (secret.data or {}).get(ref.key):
        return
    if read("admin-kubeconfig", its.system_namespace) is not None:
        return  # adopted between the two reads
    if secret is None:
        raise PermanentError(f"bootstrap Secret {ref.namespace}/{ref.name} not found")
    raise PermanentError(f"bootstrap Secret {ref.namespace}/{ref.name} has no key {ref.key}")


def wait_controlplane(
    hosting: client.ApiClient, its: ItsSpec, deadline: Deadline, log: EventLog
) -> dict[str, Any]:
    custom = client.CustomObjectsApi(hosting)
    list_fn = functools.partial(custom.list_cluster_custom_object, CP_GROUP, CP_VERSION, CP_PLURAL)
    objects = wait_until(list_fn, functools.partial(controlplane_pending, its), deadline, log, STEP,
                         f"ControlPlane {its.name} Ready", field_selector=f"metadata.name={its.name}")
    return objects[its.name]


def read_kubeconfig(
    hosting: client.ApiClient, ref: CredentialsRef, deadline: Deadline, log: EventLog
) -> str:
    core = client.CoreV1Api(hosting)
    list_fn = functools.partial(core.list_namespaced_secret, ref.namespace)
    objects = wait_until(list_fn, functools.partial(secret_pending, ref), deadline, log, STEP,
                         f"key {ref.key} in Secret {ref.namespace}/{ref.secret}",
                         field_selector=f"metadata.name={ref.secret}")
    return base64.b64decode(objects[ref.secret]["data"][ref.key]).decode()


def wait_readyz(api: client.ApiClient, deadline: Deadline, log: EventLog) -> None:
    """Probe /readyz with the space's own credentials, so a bad token fails here, not later."""

    def probe() -> None:
        method, url, headers, _, _ = api.param_serialize("GET", "/readyz", auth_settings=["BearerToken"])
        response = api.call_api(method, url, header_params=headers,
                                _request_timeout=max(1.0, min(10.0, deadline.remaining())))
        if response.status != 200:
            raise ApiException(status=response.status, reason=response.reason)

    call(probe, deadline, log, STEP, "probing the space API server /readyz")


def reach(hosting: client.ApiClient, its: ItsSpec, deadline: Deadline, log: EventLog) -> Space:
    if its.type == "external":
        _check_bootstrap_secret(hosting, its, deadline, log)
    log.info(STEP, "waiting for the ControlPlane to be Ready")
    controlplane = wait_controlplane(hosting, its, deadline, log)
    ref = credentials_ref(its, controlplane)
    log.info(STEP, "ControlPlane Ready; reading the in-cluster kubeconfig",
             secret=f"{ref.namespace}/{ref.secret}", key=ref.key, waited_s=round(deadline.elapsed(), 2))
    kubeconfig = read_kubeconfig(hosting, ref, deadline, log)
    api = client_for(kubeconfig)
    wait_readyz(api, deadline, log)
    log.info(STEP, "space API server ready", waited_s=round(deadline.elapsed(), 2))
    return Space(its=its, api=api, kubeconfig=kubeconfig)
