"""Stand-in for vcluster's pod syncer: the pods of a cluster that has no node of its own (a vcluster
space, the external cluster, a workload cluster) run as real pods on the hosting cluster's node.

What vcluster 0.16 does (pkg/controllers/resources/pods), kept:
- a pod created in the virtual cluster becomes pod <name>-x-<namespace>-x-<suffix> in the cluster's
  host namespace, labelled vcluster.loft.sh/managed-by=<suffix>, annotated with the virtual object's
  name, namespace and uid; its ServiceAccount becomes none on the host;
- the Secrets and ConfigMaps it uses are copied beside it, named the same way, and kept up to date;
- its ServiceAccount token is a TokenRequest of the virtual cluster, bound to the virtual pod: the
  kube-api-access volume becomes a Secret with that token, the virtual cluster's CA and namespace;
- KUBERNETES_SERVICE_HOST/PORT point at the Service in front of the virtual API server; fieldRefs to
  the pod's own name, namespace and uid get the virtual values;
- the virtual pod is bound to a fake node and the host pod's status is copied back to it; deleting
  either pod deletes the other.
Unlike vcluster, Services are not copied: the virtual API server runs with
--enable-aggregator-routing, so it calls webhooks at their endpoints (the host pods' IPs, which the
virtual cluster's own endpointslice controller publishes from the copied status).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .kube import manifest, or_none, run_watch

MANAGED_BY = "vcluster.loft.sh/managed-by"
OBJECT_NAME, OBJECT_NAMESPACE, OBJECT_UID = (
    "vcluster.loft.sh/object-name",
    "vcluster.loft.sh/object-namespace",
    "vcluster.loft.sh/object-uid",
)
FAKE_NODE = "ks-its-node"
TOKEN_SECONDS = 24 * 3600
# Status fields the host pod's kubelet reports, copied to the virtual pod.
STATUS_FIELDS = (
    "phase",
    "conditions",
    "message",
    "reason",
    "hostIP",
    "hostIPs",
    "podIP",
    "podIPs",
    "startTime",
    "containerStatuses",
    "initContainerStatuses",
    "qosClass",
)


def host_name(name: str, namespace: str, suffix: str) -> str:
    """vcluster's SafeConcatName: <name>-x-<namespace>-x-<suffix>, cut to 63 with a hash when longer."""
    full = f"{name}-x-{namespace}-x-{suffix}"
    if len(full) <= 63:
        return full
    return f"{full[:52]}-{hashlib.sha256(full.encode()).hexdigest()[:10]}".replace(".-", "-")


class PodSyncer:
    def __init__(
        self,
        virtual: client.ApiClient,
        virtual_ca_pem: str,
        hosting: client.ApiClient,
        host_namespace: str,
        suffix: str,
        service_ip: str,
        log: Callable[[str], None],
    ) -> None:
        """virtual: an admin client of the virtual cluster, whose CA (virtual_ca_pem) its pods trust;
        hosting: a client of the hosting cluster, allowed what vcluster's Role allows in host_namespace."""
        self.virtual = virtual
        self.virtual_ca_pem = virtual_ca_pem
        self.vcore = client.CoreV1Api(self.virtual)
        self.hosting = hosting
        self.hcore = client.CoreV1Api(hosting)
        self.namespace = host_namespace
        self.suffix = suffix
        self.service_ip = service_ip
        self.log = log
        self._lock = threading.Lock()
        self._creating: set[str] = set()
        self._synced: dict[str, dict[str, Any]] = {}  # host pod name -> its virtual pod

    # --- loops -----------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        self._fake_node()
        threading.Thread(
            target=run_watch,
            daemon=True,
            name=f"syncer-host-{self.suffix}",
            args=(self.hosting, self._list_host_pods, self._on_host_pod, stop, f"syncer({self.suffix}) host", self.log),
        ).start()
        threading.Thread(target=self._refresh_copies, args=(stop,), daemon=True, name=f"syncer-copies-{self.suffix}").start()
        run_watch(
            self.virtual, self.vcore.list_pod_for_all_namespaces, self._on_virtual_pod, stop, f"syncer({self.suffix})", self.log
        )

    def _list_host_pods(self, **kw: Any) -> Any:
        return self.hcore.list_namespaced_pod(self.namespace, label_selector=f"{MANAGED_BY}={self.suffix}", **kw)

    def _fake_node(self) -> None:
        """The node the virtual pods are bound to, as vcluster creates one per host node in use."""
        node = {
            "metadata": {
                "name": FAKE_NODE,
                "labels": {"vcluster.loft.sh/fake-node": "true", "kubernetes.io/hostname": FAKE_NODE},
            }
        }
        with contextlib.suppress(ApiException):
            self.vcore.create_node(manifest(node))
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.vcore.patch_node_status(
            FAKE_NODE,
            {
                "status": {
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "KubeletReady",
                            "lastHeartbeatTime": now,
                            "lastTransitionTime": now,
                            "message": "a fake node of the sandbox's pod syncer",
                        }
                    ],
                    "capacity": {"cpu": "16", "memory": "32Gi", "pods": "110"},
                    "allocatable": {"cpu": "16", "memory": "32Gi", "pods": "110"},
                }
            },
            _content_type="application/merge-patch+json",
        )

    def _refresh_copies(self, stop: threading.Event) -> None:
        """Secrets the virtual cluster rotates (webhook serving certificates, hub kubeconfigs) must reach
        the running pods, as vcluster keeps its copies in sync."""
        while not stop.wait(3):
            with self._lock:
                pods = list(self._synced.values())
            for vpod in pods:
                with contextlib.suppress(Exception):
                    self._copy_references(vpod)

    # --- virtual to host -------------------------------------------------------------------------

    def _on_virtual_pod(self, event: str, vpod: dict[str, Any]) -> None:
        meta = vpod["metadata"]
        name = host_name(meta["name"], meta["namespace"], self.suffix)
        if event == "DELETED" or meta.get("deletionTimestamp"):
            self._delete_host_pod(name)
            if event != "DELETED" and not self._host_pod_exists(name):
                self._delete_virtual_pod(meta["namespace"], meta["name"], meta["uid"])
            return
        with self._lock:
            if name in self._synced or name in self._creating:
                return
            self._creating.add(name)
        try:
            if not self._host_pod_exists(name):
                self._create_host_pod(name, vpod)
            with self._lock:
                self._synced[name] = vpod
        except Exception as err:
            self.log(f"syncer({self.suffix}): pod {meta['namespace']}/{meta['name']}: {type(err).__name__}: {err}")
        finally:
            with self._lock:
                self._creating.discard(name)

    def _host_pod_exists(self, name: str) -> bool:
        return or_none(self.hcore.read_namespaced_pod, name, self.namespace) is not None

    def _delete_host_pod(self, name: str) -> None:
        with self._lock:
            self._synced.pop(name, None)
        with contextlib.suppress(ApiException):
            self.hcore.delete_namespaced_pod(name, self.namespace)

    def _delete_virtual_pod(self, namespace: str, name: str, uid: str) -> None:
        """At once: no kubelet will ever confirm it in the virtual cluster."""
        with contextlib.suppress(ApiException):
            self.vcore.delete_namespaced_pod(
                name,
                namespace,
                grace_period_seconds=0,
                body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid), grace_period_seconds=0),
            )

    def _copy(self, kind: str, namespace: str, name: str) -> bool:
        """Copy a virtual Secret or ConfigMap beside the host pod; False if it does not exist (yet)."""
        read = self.vcore.read_namespaced_secret if kind == "Secret" else self.vcore.read_namespaced_config_map
        source: Any = or_none(read, name, namespace)
        if source is None:
            return False
        target = host_name(name, namespace, self.suffix)
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": kind,
            "metadata": {
                "name": target,
                "namespace": self.namespace,
                "labels": {MANAGED_BY: self.suffix},
                "annotations": {OBJECT_NAME: name, OBJECT_NAMESPACE: namespace},
            },
            "data": source.data or {},
        }
        if kind == "Secret":
            body["type"] = source.type
        else:
            body["binaryData"] = source.binary_data or {}
        apply = self.hcore.patch_namespaced_secret if kind == "Secret" else self.hcore.patch_namespaced_config_map
        apply(
            target,
            self.namespace,
            body,
            field_manager="ks-its-sandbox-syncer",
            force=True,
            _content_type="application/apply-patch+yaml",
        )
        return True

    def _copy_references(self, vpod: dict[str, Any]) -> None:
        namespace, spec = vpod["metadata"]["namespace"], vpod["spec"]
        for kind, name in _references(spec):
            self._copy(kind, namespace, name)

    def _create_host_pod(self, name: str, vpod: dict[str, Any]) -> None:
        meta, spec = vpod["metadata"], copy.deepcopy(vpod["spec"])
        namespace = meta["namespace"]
        self._copy_references(vpod)
        token_secret = f"{name}-token"
        token = self.vcore.create_namespaced_service_account_token(
            spec.get("serviceAccountName", "default"),
            namespace,
            client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(
                    audiences=[],
                    expiration_seconds=TOKEN_SECONDS,
                    bound_object_ref=client.V1BoundObjectReference(
                        kind="Pod", api_version="v1", name=meta["name"], uid=meta["uid"]
                    ),
                )
            ),
        ).status.token
        values = {"metadata.name": meta["name"], "metadata.namespace": namespace, "metadata.uid": meta["uid"]}
        translated = _translate_spec(spec, namespace, self.suffix, token_secret, values, self.service_ip)
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {MANAGED_BY: self.suffix, "vcluster.loft.sh/namespace": namespace},
                "annotations": {OBJECT_NAME: meta["name"], OBJECT_NAMESPACE: namespace, OBJECT_UID: meta["uid"]},
            },
            "spec": translated,
        }
        created = self.hcore.create_namespaced_pod(self.namespace, manifest(pod))
        owner = {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": created.metadata.uid}
        secret = {
            "metadata": {
                "name": token_secret,
                "namespace": self.namespace,
                "ownerReferences": [owner],
                "labels": {MANAGED_BY: self.suffix},
            },
            "stringData": {"token": token, "ca.crt": self.virtual_ca_pem, "namespace": namespace},
        }
        self.hcore.create_namespaced_secret(self.namespace, manifest(secret))
        with contextlib.suppress(ApiException):  # already bound, after a restart of the sandbox
            self.vcore.create_namespaced_pod_binding(
                meta["name"],
                namespace,
                client.V1Binding(
                    metadata=client.V1ObjectMeta(name=meta["name"]),
                    target=client.V1ObjectReference(kind="Node", name=FAKE_NODE),
                ),
                _preload_content=False,
            )

    # --- host to virtual -------------------------------------------------------------------------

    def _on_host_pod(self, event: str, hpod: dict[str, Any]) -> None:
        annotations = hpod["metadata"].get("annotations") or {}
        name, namespace = annotations.get(OBJECT_NAME), annotations.get(OBJECT_NAMESPACE)
        uid = annotations.get(OBJECT_UID, "")
        if not name or not namespace:
            return
        if event == "DELETED" or hpod["metadata"].get("deletionTimestamp"):
            with self._lock:
                self._synced.pop(hpod["metadata"]["name"], None)
            if event == "DELETED":  # gone on the node: so is the virtual pod (its controller makes another)
                self._delete_virtual_pod(namespace, name, uid)
            return
        status = {key: value for key, value in (hpod.get("status") or {}).items() if key in STATUS_FIELDS}
        or_none(
            self.vcore.patch_namespaced_pod_status,
            name,
            namespace,
            {"status": status},
            _content_type="application/merge-patch+json",
        )


def _references(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, name) of every Secret and ConfigMap a pod spec uses."""
    found: list[tuple[str, str]] = []
    for volume in spec.get("volumes") or []:
        sources = (volume.get("projected") or {}).get("sources") or [volume]
        for source in sources:
            if "secret" in source:
                found.append(("Secret", source["secret"].get("secretName") or source["secret"].get("name")))
            if "configMap" in source and source["configMap"].get("name") != "kube-root-ca.crt":
                found.append(("ConfigMap", source["configMap"]["name"]))
    for container in (spec.get("initContainers") or []) + spec["containers"]:
        for env in container.get("env") or []:
            ref = env.get("valueFrom") or {}
            if "secretKeyRef" in ref:
                found.append(("Secret", ref["secretKeyRef"]["name"]))
            if "configMapKeyRef" in ref:
                found.append(("ConfigMap", ref["configMapKeyRef"]["name"]))
        for source in container.get("envFrom") or []:
            if "secretRef" in source:
                found.append(("Secret", source["secretRef"]["name"]))
            if "configMapRef" in source:
                found.append(("ConfigMap", source["configMapRef"]["name"]))
    found += [("Secret", ref["name"]) for ref in spec.get("imagePullSecrets") or []]
    return sorted(set(found))


def _translate_spec(
    spec: dict[str, Any], namespace: str, suffix: str, token_secret: str, values: dict[str, str], service_ip: str
) -> dict[str, Any]:
    def rename(name: str) -> str:
        return host_name(name, namespace, suffix)

    volumes = []
    for original in spec.get("volumes") or []:
        volume = original
        projected = volume.get("projected") or {}
        if any("serviceAccountToken" in source for source in projected.get("sources") or []):
            volume = {"name": volume["name"], "secret": {"secretName": token_secret, "defaultMode": 0o644}}
        elif "secret" in volume:
            volume["secret"]["secretName"] = rename(volume["secret"]["secretName"])
        elif "configMap" in volume:
            volume["configMap"]["name"] = rename(volume["configMap"]["name"])
        elif projected:
            for source in projected.get("sources") or []:
                for kind in ("secret", "configMap"):
                    if kind in source:
                        source[kind]["name"] = rename(source[kind]["name"])
        volumes.append(volume)
    spec["volumes"] = volumes
    service_env = [
        {"name": "KUBERNETES_SERVICE_HOST", "value": service_ip},
        {"name": "KUBERNETES_SERVICE_PORT", "value": "443"},
        {"name": "KUBERNETES_SERVICE_PORT_HTTPS", "value": "443"},
    ]
    for container in (spec.get("initContainers") or []) + spec["containers"]:
        env = []
        for original in container.get("env") or []:
            variable = original
            ref = variable.get("valueFrom") or {}
            field = (ref.get("fieldRef") or {}).get("fieldPath")
            if field in values:
                variable = {"name": variable["name"], "value": values[field]}
            for kind in ("secretKeyRef", "configMapKeyRef"):
                if kind in ref:
                    ref[kind]["name"] = rename(ref[kind]["name"])
            env.append(variable)
        container["env"] = [*env, *service_env]
        for source in container.get("envFrom") or []:
            for kind in ("secretRef", "configMapRef"):
                if kind in source:
                    source[kind]["name"] = rename(source[kind]["name"])
    spec["imagePullSecrets"] = [{"name": rename(ref["name"])} for ref in spec.get("imagePullSecrets") or []]
    for dropped in (
        "nodeName",
        "nodeSelector",
        "affinity",
        "priorityClassName",
        "priority",
        "preemptionPolicy",
        "serviceAccount",
        "schedulerName",
        "topologySpreadConstraints",
    ):
        spec.pop(dropped, None)
    spec["serviceAccountName"] = "default"
    spec["automountServiceAccountToken"] = False
    spec["enableServiceLinks"] = False
    spec["hostAliases"] = [
        *(spec.get("hostAliases") or []),
        {"ip": service_ip, "hostnames": ["kubernetes", "kubernetes.default", "kubernetes.default.svc"]},
    ]
    return spec
