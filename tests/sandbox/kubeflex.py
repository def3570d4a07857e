"""Stand-in for the KubeFlex operator (v0.9.3): reconciles ControlPlanes as upstream does.

- adds the finalizer kflex.kubestellar.org/finalizer and creates namespace <name>-system,
  controller-owned by the ControlPlane (the real garbage collector deletes it with the ControlPlane);
- vcluster: a separate real kube-apiserver (same etcd, own prefix) behind Service `vcluster` in
  <name>-system (upstream: the vcluster chart's Service), and Secret vc-vcluster with keys
  `config-incluster` (server https://vcluster.<name>-system, as upstream) and `config`, for use
  outside the hosting cluster (upstream: an ingress host; here the machine's relay to the space);
- host: ServiceAccount <name>, ClusterRoleBinding <name>-binding to cluster-admin, and Secret
  admin-kubeconfig with key kubeconfig-incluster (server https://kubernetes.default.svc, a token of
  that ServiceAccount);
- external: reads the bootstrap Secret, creates kube-system/kubeflex in the external cluster, writes
  admin-kubeconfig with the bootstrap kubeconfig's cluster entry as it is, then deletes the bootstrap
  Secret (and skips all of it if admin-kubeconfig exists);
- status.secretRef and the Synced / Ready conditions with upstream reasons.

Faults come from ConfigMap kube-system/sandbox-standins, key = ControlPlane name or "default",
value = JSON: start_delay_s, never_ready, incluster_key_delay_s (Ready is set before the key is
written: the upstream race), fail_synced_s (Synced=False/ReconcileError for a while, as a booting vcluster shows).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .kube import api_client, as_dict, condition, front_service, manifest, run_watch
from .ports import free_port
from .servers import ApiServer, Etcd, kubeconfig
from .virtual import APISERVER_ARGS

GROUP, VERSION, PLURAL = "tenancy.kflex.kubestellar.org", "v1alpha1", "controlplanes"
FINALIZER = "kflex.kubestellar.org/finalizer"
FAULTS_NAMESPACE, FAULTS_NAME = "kube-system", "sandbox-standins"


class KubeFlex:
    def __init__(
        self, hosting: ApiServer, etcd: Etcd, on_space: Callable[[ApiServer, str, str], None], log: Callable[[str], None]
    ) -> None:
        self.hosting = hosting
        self.etcd = etcd
        self.on_space = on_space
        self.log = log
        self.api = api_client(hosting.admin_kubeconfig())
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)
        self.rbac = client.RbacAuthorizationV1Api(self.api)
        self.spaces: dict[str, ApiServer] = {}
        self._provisioning: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # A cluster has finite room: at most this many space API servers start at once (fifty at
        # once on two cores all miss their start-up deadline; a real cluster would queue the pods).
        self._starts = threading.BoundedSemaphore(3)

    # --- loop ----------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        self._stop = stop
        threading.Thread(target=self._keep_spaces_running, daemon=True, name="kubeflex-spaces").start()

        def list_fn(**kw: Any) -> Any:
            return self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, **kw)

        run_watch(self.api, list_fn, self._handle, stop, "kubeflex", self.log)
        for space in list(self.spaces.values()):
            space.stop()

    def _keep_spaces_running(self) -> None:
        """A vcluster runs as a Deployment upstream: a killed API server comes back on the same address."""
        while not self._stop.wait(0.5):
            for name, space in list(self.spaces.items()):
                if space.process and not space.process.alive() and name in self.spaces:
                    self.log(f"kubeflex: space {name} API server exited; restarting it")
                    try:
                        with self._starts:
                            space.start()
                    except Exception as err:
                        self.log(f"kubeflex: space {name} restart failed: {err}")

    def _handle(self, event: str, cp: dict[str, Any]) -> None:
        name = cp["metadata"]["name"]
        if event == "DELETED":
            return
        if cp["metadata"].get("deletionTimestamp"):
            self._delete(cp)
            return
        with self._lock:
            if name in self._provisioning:
                return
            self._provisioning.add(name)
        threading.Thread(target=self._provision_safely, args=(cp,), daemon=True, name=f"kubeflex-{name}").start()

    def _provision_safely(self, cp: dict[str, Any]) -> None:
        name = cp["metadata"]["name"]
        try:
            self._provision(cp)
        except Exception as err:
            self.log(f"kubeflex: ControlPlane {name}: {type(err).__name__}: {err}")
            self._set_status(name, synced=(False, "ReconcileError", str(err)[:200]))
            self._stop.wait(2)  # a controller's requeue backoff, not a hot loop
            with self._lock:
                self._provisioning.discard(name)  # the next event retries, as a requeue would

    # --- reconcile -----------------------------------------------------------------------------

    def faults(self, name: str) -> dict[str, Any]:
        try:
            data = self.core.read_namespaced_config_map(FAULTS_NAME, FAULTS_NAMESPACE).data or {}
        except ApiException:
            return {}
        merged: dict[str, Any] = json.loads(data.get("default", "{}"))
        merged.update(json.loads(data.get(name, "{}")))
        return merged

    def _provision(self, cp: dict[str, Any]) -> None:
        meta, spec = cp["metadata"], cp["spec"]
        name, cp_type = meta["name"], spec["type"]
        if FINALIZER not in (meta.get("finalizers") or []):
            self.custom.patch_cluster_custom_object(
                GROUP,
                VERSION,
                PLURAL,
                name,
                {"metadata": {"finalizers": [*(meta.get("finalizers") or []), FINALIZER]}},
                _content_type="application/merge-patch+json",
            )
        namespace = f"{name}-system"
        self._ensure_namespace(namespace, cp)
        faults = self.faults(name)
        ready = (cp.get("status") or {}).get("conditions") or []
        if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in ready):
            self._set_status(name, synced=(True, "ReconcileSuccess", ""), ready=(False, "Creating", ""))
        if faults.get("fail_synced_s"):
            self._set_status(name, synced=(False, "ReconcileError", "waiting for the API server to start"))
            time.sleep(float(faults["fail_synced_s"]))
        time.sleep(float(faults.get("start_delay_s", 0)))
        if faults.get("never_ready"):
            self.log(f"kubeflex: ControlPlane {name} stays Creating (fault never_ready)")
            return
        if cp_type == "vcluster":
            secret_ref = self._vcluster(name, namespace, faults)
        elif cp_type == "host":
            secret_ref = self._host(name, namespace, cp)
        elif cp_type == "external":
            secret_ref = self._external(name, namespace, cp)
        else:
            raise ValueError(f"type {cp_type} is not supported by the sandbox")
        # The instant Ready is sent is logged (epoch seconds): make bench measures detection from it.
        ready_at = time.time()
        self._set_status(name, synced=(True, "ReconcileSuccess", ""), ready=(True, "Available", ""), secret_ref=secret_ref)
        self.log(f"kubeflex: ControlPlane {name} ({cp_type}) Ready ready_at={ready_at:.6f}")

    def _ensure_namespace(self, namespace: str, cp: dict[str, Any]) -> None:
        """Create <name>-system. The namespace of a deleted ControlPlane of the same name may still be
        terminating: upstream's creates in it fail (Forbidden) and it requeues until the namespace is
        gone; the stand-in waits for that, then provisions the new space."""
        owner = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ControlPlane",
            "name": cp["metadata"]["name"],
            "uid": cp["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
        while True:
            try:
                self.core.create_namespace(manifest({"metadata": {"name": namespace, "ownerReferences": [owner]}}))
                return
            except ApiException as err:
                if err.status != 409:
                    raise
            try:
                existing = self.core.read_namespace(namespace)
            except ApiException as err:
                if err.status == 404:
                    continue  # gone meanwhile: create it now
                raise
            if not existing.metadata.deletion_timestamp:
                return
            self._set_status(cp["metadata"]["name"], synced=(False, "ReconcileError", f"namespace {namespace} is terminating"))
            if self._stop.wait(1):
                raise RuntimeError("stopped")

    def _write_secret(self, namespace: str, name: str, data: dict[str, str]) -> None:
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        body = {"metadata": {"name": name, "namespace": namespace}, "data": encoded}
        try:
            self.core.create_namespaced_secret(namespace, manifest(body))
        except ApiException as err:
            if err.status != 409:
                raise
            self.core.patch_namespaced_secret(name, namespace, {"data": encoded}, _content_type="application/merge-patch+json")

    def _vcluster(self, name: str, namespace: str, faults: dict[str, Any]) -> dict[str, str]:
        space = self.spaces.get(name)
        if space is None:
            port = free_port()
            service_ip = front_service(self.api, namespace, "vcluster", port)
            names = (
                "vcluster",
                f"vcluster.{namespace}",
                f"vcluster.{namespace}.svc",
                f"vcluster.{namespace}.svc.cluster.local",
                service_ip,
            )
            space = ApiServer(f"space-{name}", self.hosting.root, self.etcd, port=port, hosts=names, extra_args=APISERVER_ARGS)
            with self._starts:
                space.start()
            self.spaces[name] = space
            self.on_space(space, namespace, service_ip)
        assert space.admin is not None
        # For use outside the hosting cluster: upstream writes an ingress host there; here the
        # machine reaches the space at the same port on its loopback (a relay).
        external = kubeconfig(space.url, space.ca.cert_pem, name, client=space.admin)
        # Upstream's in-cluster form: the same kubeconfig with the server of the vcluster Service.
        incluster = kubeconfig(f"https://vcluster.{namespace}", space.ca.cert_pem, name, client=space.admin)
        self._write_secret(namespace, "vc-vcluster", {"config": external})
        delay = float(faults.get("incluster_key_delay_s", 0))
        ref = {"name": "vc-vcluster", "namespace": namespace, "key": "config", "inClusterKey": "config-incluster"}
        if delay:
            # The upstream race: Ready is visible before config-incluster is written.
            self._set_status(name, synced=(True, "ReconcileSuccess", ""), ready=(True, "Available", ""), secret_ref=ref)
            time.sleep(delay)
        self._write_secret(namespace, "vc-vcluster", {"config": external, "config-incluster": incluster})
        return ref

    def _token(self, core: client.CoreV1Api, sa: str, namespace: str, seconds: int) -> str:
        request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds))
        return str(core.create_namespaced_service_account_token(sa, namespace, request).status.token)

    def _host(self, name: str, namespace: str, cp: dict[str, Any]) -> dict[str, str]:
        try:
            self.core.create_namespaced_service_account(namespace, manifest({"metadata": {"name": name}}))
        except ApiException as err:
            if err.status != 409:
                raise
        binding = {
            "metadata": {"name": f"{name}-binding"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        }
        try:
            self.rbac.create_cluster_role_binding(manifest(binding))
        except ApiException as err:
            if err.status != 409:
                raise
        token = self._token(self.core, name, namespace, int(cp["spec"].get("tokenExpirationSeconds", 31536000)))
        config = kubeconfig("https://kubernetes.default.svc", self.hosting.ca.cert_pem, name, token=token)
        self._write_secret(namespace, "admin-kubeconfig", {"kubeconfig-incluster": config})
        return {"name": "admin-kubeconfig", "namespace": namespace, "key": "kubeconfig", "inClusterKey": "kubeconfig-incluster"}

    def _external(self, name: str, namespace: str, cp: dict[str, Any]) -> dict[str, str]:
        ref = {"name": "admin-kubeconfig", "namespace": namespace, "key": "kubeconfig", "inClusterKey": "kubeconfig-incluster"}
        try:
            self.core.read_namespaced_secret("admin-kubeconfig", namespace)
            return ref  # adopted already: upstream skips everything
        except ApiException as err:
            if err.status != 404:
                raise
        boot = cp["spec"].get("bootstrapSecretRef") or {}
        key = boot.get("inClusterKey") or "kubeconfig-incluster"
        while True:
            try:
                secret = self.core.read_namespaced_secret(boot["name"], boot["namespace"])
                text = base64.b64decode((secret.data or {})[key]).decode()
                break
            except (ApiException, KeyError) as err:
                why = "not found" if isinstance(err, ApiException) else f"has no key {key}"
                self._set_status(
                    name, synced=(False, "ReconcileError", f"bootstrap secret {boot.get('namespace')}/{boot.get('name')} {why}")
                )
                if self._stop.wait(2):
                    raise RuntimeError("stopped") from err
        external_api = api_client(text)
        core = client.CoreV1Api(external_api)
        try:
            core.create_namespaced_service_account("kube-system", manifest({"metadata": {"name": "kubeflex"}}))
        except ApiException as err:
            if err.status != 409:
                raise
        try:
            client.RbacAuthorizationV1Api(external_api).create_cluster_role_binding(
                manifest(
                    {
                        "metadata": {"name": "kubeflex"},
                        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                        "subjects": [{"kind": "ServiceAccount", "name": "kubeflex", "namespace": "kube-system"}],
                    }
                )
            )
        except ApiException as err:
            if err.status != 409:
                raise
        token = self._token(core, "kubeflex", "kube-system", int(cp["spec"].get("tokenExpirationSeconds", 31536000)))
        # Upstream copies the bootstrap kubeconfig's cluster entry as it is: its server must be valid
        # inside the hosting cluster.
        boot_config = yaml.safe_load(text)
        context = next(c for c in boot_config["contexts"] if c["name"] == boot_config["current-context"])
        cluster = next(c for c in boot_config["clusters"] if c["name"] == context["context"]["cluster"])
        config = yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": name,
                "clusters": [cluster],
                "users": [{"name": name, "user": {"token": token}}],
                "contexts": [{"name": name, "context": {"cluster": cluster["name"], "user": name}}],
            },
            sort_keys=False,
        )
        self._write_secret(namespace, "admin-kubeconfig", {"kubeconfig-incluster": config})
        self.core.delete_namespaced_secret(boot["name"], boot["namespace"])
        return ref

    def _set_status(
        self,
        name: str,
        synced: tuple[bool, str, str] | None = None,
        ready: tuple[bool, str, str] | None = None,
        secret_ref: dict[str, str] | None = None,
    ) -> None:
        try:
            cp = as_dict(self.api, self.custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, name))
        except ApiException:
            return
        status = cp.get("status") or {}
        conditions = {c["type"]: c for c in status.get("conditions") or []}
        for cond_type, value in (("Synced", synced), ("Ready", ready)):
            if value is not None:
                new = condition(cond_type, *value)
                old = conditions.get(cond_type)
                if old and old.get("status") == new["status"]:
                    new["lastTransitionTime"] = old.get("lastTransitionTime", new["lastTransitionTime"])
                conditions[cond_type] = new
        status["conditions"] = list(conditions.values())
        if secret_ref:
            status["secretRef"] = secret_ref
        status["observedGeneration"] = cp["metadata"].get("generation", 1)
        self.custom.patch_cluster_custom_object_status(
            GROUP, VERSION, PLURAL, name, {"status": status}, _content_type="application/merge-patch+json"
        )

    def _delete(self, cp: dict[str, Any]) -> None:
        name = cp["metadata"]["name"]
        space = self.spaces.pop(name, None)
        if space is not None:
            space.destroy()  # a ControlPlane made again with this name gets a new, empty space
        with self._lock:
            self._provisioning.discard(name)
        finalizers = [f for f in cp["metadata"].get("finalizers") or [] if f != FINALIZER]
        if len(finalizers) != len(cp["metadata"].get("finalizers") or []):
            self.custom.patch_cluster_custom_object(
                GROUP,
                VERSION,
                PLURAL,
                name,
                {"metadata": {"finalizers": finalizers}},
                _content_type="application/merge-patch+json",
            )
            self.log(f"kubeflex: ControlPlane {name} deleted")
