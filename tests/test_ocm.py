"""The real OCM hub in every ITS: a WEC joins it with the real clusteradm and klusterlet, receives
work and reports its status; ready means serving, with the status add-on running."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.harness import (
    KUBESTELLAR_BOOTSTRAP_USER,
    Sandbox,
    assert_ready_its,
    assert_status_addon,
    create_its,
    install,
    run_hook,
    unique,
    wait_until,
)
from tests.sandbox.kube import as_object, or_none
from tests.sandbox.servers import BIN

CLUSTER = ("cluster.open-cluster-management.io", "v1", "managedclusters")
# A deadline far above what any run takes, even on a loaded machine: a run that ends well before it
# did not wait for it.
DEADLINE = 600
WORK = ("work.open-cluster-management.io", "v1")


def conditions(obj: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions") or []}


@pytest.fixture
def wec(sandbox: Sandbox) -> Iterator[tuple[str, Path]]:
    name = unique("wec")
    yield name, sandbox.add_cluster(name)
    sandbox.remove_cluster(name)
    # Hubs in spaces go with their space; the hosting cluster's and the external cluster's stay.
    for kubeconfig in (sandbox.kubeconfig, sandbox.external_kubeconfig):
        sandbox.run(
            str(BIN / "kubectl"),
            "--kubeconfig",
            str(kubeconfig),
            "delete",
            "managedcluster",
            name,
            "--ignore-not-found",
            "--wait=false",
            check=False,
        )


@pytest.mark.parametrize("its_type", ["vcluster", "host", "external"])
def test_a_wec_joins_each_type_of_its_and_carries_work_both_ways(
    sandbox: Sandbox, wec: tuple[str, Path], its_type: str, request: pytest.FixtureRequest
) -> None:
    if its_type == "host":
        request.getfixturevalue("host_hub")
    wec_name, wec_kubeconfig = wec
    namespace, name = unique("ocm"), unique(f"ocm-{its_type[:4]}")
    its: dict[str, Any] = {"name": name, "type": its_type}
    if its_type == "external":
        sandbox.create_bootstrap_secret(f"{name}-bootstrap", namespace)
    # The hosting cluster and this worker's external cluster are each one space that other tests use too,
    # all with the chart's default add-on settings: only a space of this test's own shows that other
    # settings reach the add-on's controller.
    settings = {"verbosity": 4, "hub_qps": 7} if its_type == "vcluster" else {"verbosity": 2, "hub_qps": 5}
    install(
        sandbox,
        "helm3",
        "ks-its",
        namespace,
        [its],
        "--set",
        f"statusAddon.controller.verbosity={settings['verbosity']}",
        "--set",
        f"statusAddon.agent.hub_qps={settings['hub_qps']}",
    )
    assert_ready_its(sandbox, name)
    assert_status_addon(sandbox, name, **settings)

    # KubeStellar 0.30's onboarding (clusteradm 1.0.x's identity): its approval takes only CSRs of it.
    assert sandbox.join_as_kubestellar(wec_name, name, wec_kubeconfig) == [KUBESTELLAR_BOOTSTRAP_USER]
    hub = client.CustomObjectsApi(sandbox.space_api(name))
    joined = wait_until(
        "the ManagedCluster Joined and Available",
        lambda: (
            c := conditions(as_object(hub.get_cluster_custom_object(*CLUSTER, wec_name))),
            c.get("ManagedClusterJoined") == "True" and c.get("ManagedClusterConditionAvailable") == "True",
        )[1],
    )
    assert joined
    mailbox = client.CoreV1Api(sandbox.space_api(name)).read_namespace(wec_name)
    assert mailbox.status.phase == "Active"

    work = {
        "apiVersion": f"{WORK[0]}/{WORK[1]}",
        "kind": "ManifestWork",
        "metadata": {"name": "hello", "namespace": wec_name},
        "spec": {
            "workload": {
                "manifests": [
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": "hello", "namespace": "default"},
                        "data": {"from": name},
                    }
                ]
            },
            "manifestConfigs": [
                {
                    "resourceIdentifier": {"resource": "configmaps", "name": "hello", "namespace": "default"},
                    "feedbackRules": [{"type": "JSONPaths", "jsonPaths": [{"name": "from", "path": ".data.from"}]}],
                }
            ],
        },
    }
    hub.create_namespaced_custom_object(*WORK, wec_name, "manifestworks", work)
    on_wec = client.CoreV1Api(sandbox.api_client_for(wec_kubeconfig))
    assert wait_until("the ConfigMap on the WEC", lambda: on_wec.read_namespaced_config_map("hello", "default")).data == {
        "from": name
    }

    def fed_back() -> bool:
        status = as_object(hub.get_namespaced_custom_object(*WORK, wec_name, "manifestworks", "hello")).get("status") or {}
        feedback = ((status.get("resourceStatus") or {}).get("manifests") or [{}])[0].get("statusFeedback") or {}
        values = {v["name"]: v["fieldValue"].get("string") for v in feedback.get("values") or []}
        return conditions({"status": status}).get("Available") == "True" and values == {"from": name}

    wait_until("the ManifestWork Available with the ConfigMap's value fed back", fed_back)
    hub.delete_namespaced_custom_object(*WORK, wec_name, "manifestworks", "hello")

    def gone() -> bool:
        return or_none(on_wec.read_namespaced_config_map, "hello", "default") is None

    wait_until("the ConfigMap deleted on the WEC", gone)
    sandbox.helm("helm3", "uninstall", "ks-its", "--namespace", namespace, "--wait")


def test_hub_options_reach_clusteradm_init_a_kubestellar_wec_is_auto_approved_and_a_changed_option_is_refused(
    sandbox: Sandbox, wec: tuple[str, Path], hook_runner: str
) -> None:
    wec_name, wec_kubeconfig = wec
    name = unique("hub-opts")
    options = {
        "featureGates": {"ManagedClusterAutoApproval": True},
        "resources": {
            "qosClass": "ResourceRequirement",
            "requests": {"cpu": "10m", "memory": "64Mi"},
            "limits": {"memory": "512Mi"},
        },
    }
    its = {**create_its(sandbox, name, "vcluster"), "ocm": options}
    result = run_hook(sandbox, [its], deadline=DEADLINE)
    assert result.returncode == 0, result.stderr
    assert_ready_its(sandbox, name)
    cm = as_object(
        client.CustomObjectsApi(sandbox.space_api(name)).get_cluster_custom_object(
            "operator.open-cluster-management.io", "v1", "clustermanagers", "cluster-manager"
        )
    )
    registration = cm["spec"]["registrationConfiguration"]
    assert {"feature": "ManagedClusterAutoApproval", "mode": "Enable"} in registration["featureGates"]
    assert KUBESTELLAR_BOOTSTRAP_USER in registration["autoApproveUsers"]
    assert cm["spec"]["resourceRequirement"] == {
        "type": "ResourceRequirement",
        "resourceRequirements": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
    }
    # The operator runs the hub with them.
    apps = client.AppsV1Api(sandbox.space_api(name))
    for namespace, deployment in (
        ("open-cluster-management", "cluster-manager"),
        ("open-cluster-management-hub", "cluster-manager-registration-controller"),
    ):
        resources = apps.read_namespaced_deployment(deployment, namespace).spec.template.spec.containers[0].resources
        assert (resources.requests, resources.limits) == ({"cpu": "10m", "memory": "64Mi"}, {"memory": "512Mi"}), deployment

    # A WEC joins as KubeStellar's do, and no one accepts it: the hub does.
    sandbox.join_as_kubestellar(wec_name, name, wec_kubeconfig, accept=False)
    hub = client.CustomObjectsApi(sandbox.space_api(name))
    wait_until(
        "the ManagedCluster accepted and joined",
        lambda: conditions(as_object(hub.get_cluster_custom_object(*CLUSTER, wec_name))).get("ManagedClusterJoined") == "True",
    )
    csrs = (
        client.CertificatesV1Api(sandbox.space_api(name))
        .list_certificate_signing_request(label_selector=f"open-cluster-management.io/cluster-name={wec_name}")
        .items
    )
    assert {(csr.spec.username, c.reason) for csr in csrs for c in csr.status.conditions or [] if c.type == "Approved"} == {
        (KUBESTELLAR_BOOTSTRAP_USER, "AutoApprovedByHubCSRApprovingController")
    }

    # Options clusteradm can set only when it makes the hub: a change is refused, saying so.
    result = run_hook(sandbox, [{"name": name, "type": "vcluster"}], deadline=DEADLINE)
    assert result.returncode == 3, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"ITS {name}: step ocm-hub failed: the hub was made with feature gates ManagedClusterAutoApproval=true, "
        "resources ResourceRequirement requests cpu=10m,memory=64Mi limits memory=512Mi, not feature gates none, "
        "resources Default; clusteradm sets a hub's feature gates and resources only when it makes the hub: set "
        "ocm.featureGates and ocm.resources back, or delete the ITS's ControlPlane for a new space and hub"
    )


def set_default_cluster_set(sandbox: Sandbox, its: str, mode: str | None) -> None:
    """Turn the hub registration's DefaultClusterSet feature on (Enable) or back to its default, off
    (None), and wait until its controller runs with that setting alone."""
    space = sandbox.space_api(its)
    gates = [{"feature": "DefaultClusterSet", "mode": mode}] if mode else []
    client.CustomObjectsApi(space).patch_cluster_custom_object(
        "operator.open-cluster-management.io",
        "v1",
        "clustermanagers",
        "cluster-manager",
        {"spec": {"registrationConfiguration": {"featureGates": gates}}},
    )
    apps, core = client.AppsV1Api(space), client.CoreV1Api(space)
    name, namespace = "cluster-manager-registration-controller", "open-cluster-management-hub"

    def gated(args: list[str] | None) -> bool:
        return "--feature-gates=DefaultClusterSet=true" in (args or [])

    def rolled_out() -> bool:
        deployment = apps.read_namespaced_deployment(name, namespace)
        status = deployment.status
        selector = ",".join(f"{k}={v}" for k, v in deployment.spec.selector.match_labels.items())
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items  # terminating ones too
        return (
            gated(deployment.spec.template.spec.containers[0].args) == bool(mode)
            and (status.observed_generation or 0) >= (deployment.metadata.generation or 0)
            and status.replicas == status.updated_replicas == status.available_replicas
            and all(gated(pod.spec.containers[0].args) == bool(mode) for pod in pods)
        )

    wait_until("the hub's registration controller rolled out", rolled_out, timeout=300)


def test_install_clusteradm_false_serves_with_a_hub_someone_installed_first(sandbox: Sandbox, hook_runner: str) -> None:
    its = create_its(sandbox, unique("byo-hub"), "vcluster")
    wait_until("the space", lambda: (sandbox.controlplane(its["name"]) or {}).get("status", {}).get("secretRef"))
    sandbox.run(
        str(BIN / "clusteradm"),
        "init",
        "--kubeconfig",
        str(sandbox.hub_kubeconfig(its["name"])),
        "--image-registry",
        sandbox.ocm_registry,
        "--bundle-version",
        "default",
    )
    # A hub without the DefaultClusterSet feature has no ManagedClusterSet global, which the status
    # add-on's Placement selects: refused at once, saying what to turn on.
    set_default_cluster_set(sandbox, its["name"], None)
    sets = client.CustomObjectsApi(sandbox.space_api(its["name"]))
    # (Gone already when the controller was replaced before it made it.)
    or_none(sets.delete_cluster_custom_object, "cluster.open-cluster-management.io", "v1beta2", "managedclustersets", "global")
    brought = {**its, "install_clusteradm": False}
    result = run_hook(sandbox, [brought], deadline=300)
    assert result.returncode == 3, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"ITS {its['name']}: step status-addon failed: the hub has no ManagedClusterSet global, which the status "
        "add-on's Placement selects (without it the add-on reaches no WEC): turn on the DefaultClusterSet feature "
        "of the hub's registration (ClusterManager spec.registrationConfiguration.featureGates), then run the hook "
        "again (helm upgrade)"
    )
    # Done as the line says, the next run makes the ITS ready.
    set_default_cluster_set(sandbox, its["name"], "Enable")
    wait_until(
        "the hub's ManagedClusterSet global",
        lambda: sets.get_cluster_custom_object("cluster.open-cluster-management.io", "v1beta2", "managedclustersets", "global"),
    )
    result = run_hook(sandbox, [brought], deadline=300)
    assert result.returncode == 0, result.stderr
    assert 'msg="ClusterManager exists; not running clusteradm init"' in result.stderr
    assert 'msg="running clusteradm init"' not in result.stderr
    assert_ready_its(sandbox, its["name"])
    # A hub the user brought is never changed: not even clusteradm 1.0's bootstrap identity is added.
    space = client.CoreV1Api(sandbox.space_api(its["name"]))
    assert or_none(space.read_namespaced_service_account, "agent-registration-bootstrap", "open-cluster-management") is None


def test_a_hub_whose_images_its_registry_does_not_have_fails_at_once_then_the_corrected_value_repairs_it(
    sandbox: Sandbox, hook_runner: str
) -> None:
    """The registry answers that it has no such image: no wait can mend that, the line says which
    value to change; changed, the next run brings the hub to it."""
    its = create_its(sandbox, unique("no-images"), "vcluster")
    wrong = f"{sandbox.registry}/not-open-cluster-management"
    result = run_hook(sandbox, [its], deadline=DEADLINE, ocm_registry=wrong)
    assert result.returncode == 3, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    image = f"{wrong}/registration-operator:v0.13.1"
    assert re.fullmatch(
        rf"ITS {its['name']}: step ocm-hub failed: Deployment cluster-manager not available: "
        rf"(ErrImagePull|ImagePullBackOff) \(image {re.escape(image)}\): its registry has no image "
        rf"{re.escape(image)}; ocm\.imageRegistry must name a registry that holds OCM's images at the "
        r"tag of ocm\.bundleVersion",
        last,
    ), last
    assert "timed out" not in result.stderr
    cp = sandbox.controlplane(its["name"]) or {}
    assert "kflex.kubestellar.io/cptype" not in (cp["metadata"].get("labels") or {})
    assert cp["metadata"]["annotations"]["its.kubestellar.io/status"].startswith("Failed: ocm-hub: Deployment")

    # The user corrects ocm.imageRegistry, as the line says, and runs the hook again (helm upgrade).
    result = run_hook(sandbox, [its], deadline=DEADLINE)
    assert result.returncode == 0, result.stderr
    brought = [line for line in result.stderr.splitlines() if 'msg="brought the hub to its settings"' in line]
    assert len(brought) == 1, result.stderr
    assert brought[0].endswith(
        f'msg="brought the hub to its settings" was="imageRegistry={wrong} bundleVersion=default" '
        f'now="imageRegistry={sandbox.ocm_registry} bundleVersion=default" '
        'changed="Deployment cluster-manager, ClusterManager cluster-manager"'
    ), brought[0]
    assert_ready_its(sandbox, its["name"])
    hub = client.AppsV1Api(sandbox.space_api(its["name"]))
    operator = hub.read_namespaced_deployment("cluster-manager", "open-cluster-management")
    assert operator.spec.template.spec.containers[0].image == f"{sandbox.ocm_registry}/registration-operator:v0.13.1"
    # Brought to its settings, the hub is not upgraded again.
    again = run_hook(sandbox, [its], deadline=DEADLINE)
    assert again.returncode == 0, again.stderr
    assert "brought the hub to its settings" not in again.stderr


def test_a_hub_whose_registry_does_not_answer_says_so_while_it_waits(sandbox: Sandbox, hook_runner: str) -> None:
    """A registry that may come back (refused connections) is waited for, to the deadline; meanwhile
    every progress line says what the pods say."""
    its = create_its(sandbox, unique("no-registry"), "vcluster")
    unreachable = f"{sandbox.state['node_ip']}:1/open-cluster-management"  # nothing listens on port 1
    deadline = 150  # room for the space and clusteradm init on a loaded machine: the failure must be the pulls
    result = run_hook(sandbox, [its], deadline=deadline, ocm_registry=unreachable)
    assert result.returncode == 1, result.stderr
    image = f"{unreachable}/registration-operator:v0.13.1"
    told = [
        line
        for line in result.stderr.splitlines()
        if 'msg="waiting for the ClusterManager to be applied and running"' in line and image in line
    ]
    assert told and re.search(
        r'why="Deployment cluster-manager not available: (ErrImagePull|ImagePullBackOff) '
        rf'\(image {re.escape(image)}\)"',
        told[0],
    ), result.stderr
    waited = re.search(r"waited_s=(\S+)", told[0])
    assert waited
    waited_when_told = float(waited.group(1))
    last = result.stderr.strip().splitlines()[-1]
    failed = re.fullmatch(
        rf"ITS {its['name']}: step ocm-hub failed: timed out after (\d+)s waiting for the OCM hub: "
        rf"Deployment cluster-manager not available: (ErrImagePull|ImagePullBackOff) "
        rf"\(image {re.escape(image)}\)",
        last,
    )
    assert failed, last
    assert int(failed.group(1)) >= deadline > waited_when_told
