"""A cluster without a node of its own, as a vcluster space, the external cluster or a workload
cluster is here: its API server, a kube-controller-manager of its own with the controllers OCM
relies on, and the pod syncer (syncer.py) that runs its pods on the hosting cluster's node."""

from __future__ import annotations

import threading
from collections.abc import Callable

from kubernetes import client

from .kube import api_client
from .servers import ApiServer, ControllerManager
from .syncer import PodSyncer

CONTROLLERS = (
    # Pods for OCM's Deployments, and the endpoints its webhooks are called at.
    "deployment-controller",
    "replicaset-controller",
    "endpointslice-controller",
    "namespace-controller",
    "garbage-collector-controller",
    "serviceaccount-controller",
    "root-ca-certificate-publisher-controller",
    # A hub signs its managed clusters' client certificates; a managed cluster's work agent has
    # its permissions from aggregated ClusterRoles.
    "certificatesigningrequest-signing-controller",
    "clusterrole-aggregation-controller",
)
# The space's API server calls webhooks at their endpoints (pod IPs), not their ClusterIPs: its
# Services have no routing, vcluster's share the hosting cluster's.
APISERVER_ARGS = ("--enable-aggregator-routing=true",)


class VirtualCluster:
    def __init__(
        self,
        apiserver: ApiServer,
        hosting: client.ApiClient,
        host_namespace: str,
        suffix: str,
        service_ip: str,
        log: Callable[[str], None],
    ) -> None:
        self.apiserver = apiserver
        d = apiserver.dir
        self.kcm = ControllerManager(
            apiserver,
            CONTROLLERS,
            extra_args=(f"--cluster-signing-cert-file={d / 'ca.crt'}", f"--cluster-signing-key-file={d / 'ca.key'}"),
        )
        self.syncer = PodSyncer(
            api_client(apiserver.admin_kubeconfig()),
            apiserver.ca.cert_pem.decode(),
            hosting,
            host_namespace,
            suffix,
            service_ip,
            log,
        )

    def start(self) -> None:
        """Until its API server is retired (its space deleted), or the sandbox stops."""
        self.kcm.start()
        threading.Thread(
            target=self.syncer.run, args=(self.apiserver.retired,), daemon=True, name=f"syncer-{self.apiserver.name}"
        ).start()
        threading.Thread(target=self._stop_when_retired, daemon=True, name=f"kcm-{self.apiserver.name}").start()

    def _stop_when_retired(self) -> None:
        self.apiserver.retired.wait()
        self.kcm.stop()

    def stop(self) -> None:
        self.kcm.stop()
