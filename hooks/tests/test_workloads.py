"""Whether Deployments are available, and why a pod does not run."""

from __future__ import annotations

from ks_its_hooks import workloads


def deployment(available: int, replicas: int = 1, generation: int = 2, observed: int = 2) -> dict[str, object]:
    return {"metadata": {"generation": generation}, "spec": {"replicas": replicas},
            "status": {"observedGeneration": observed, "availableReplicas": available, "updatedReplicas": available}}


def test_deployments_are_available_only_when_observed_and_every_replica_is_available() -> None:
    names = ("a", "b", "c")
    objects = {"a": deployment(1), "b": deployment(0), "c": deployment(1, observed=1)}
    assert workloads.deployments_pending(names, objects) == "Deployments not available: b, c"
    assert workloads.deployments_pending(("a",), objects) is None
    assert workloads.deployments_pending(("d",), objects) == "Deployments not available: d"


def test_a_pod_says_why_it_does_not_run_and_which_image() -> None:
    pulling = {"spec": {"containers": [{"name": "c", "image": "mirror/registration:v0.13.1"}]},
               "status": {"containerStatuses": [{"name": "c", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}}
    assert workloads.pod_trouble(pulling) == "ImagePullBackOff (image mirror/registration:v0.13.1)"
    starting = {"spec": {"containers": [{"name": "c", "image": "x"}]},
                "status": {"containerStatuses": [{"name": "c", "state": {"waiting": {"reason": "ContainerCreating"}}}]}}
    assert workloads.pod_trouble(starting) is None
    unscheduled = {"spec": {"containers": []}, "status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "message": "0/1 nodes are available"}]}}
    assert workloads.pod_trouble(unscheduled) == "not scheduled: 0/1 nodes are available"
