"""Whether Deployments are available, and why a pod does not run."""

from __future__ import annotations

from ks_its_hooks import workloads


def deployment(available: int, replicas: int = 1, generation: int = 2, observed: int = 2) -> dict[str, object]:
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": replicas},
        "status": {"observedGeneration": observed, "availableReplicas": available, "updatedReplicas": available},
    }


def test_deployments_are_available_only_when_observed_and_every_replica_is_available() -> None:
    names = ("a", "b", "c")
    objects = {"a": deployment(1), "b": deployment(0), "c": deployment(1, observed=1)}
    assert workloads.deployments_pending(names, objects) == "Deployments not available: b, c"
    assert workloads.deployments_pending(("a",), objects) is None
    assert workloads.deployments_pending(("d",), objects) == "Deployments not available: d"


def test_a_pod_says_why_it_does_not_run_and_which_image() -> None:
    pulling = {
        "spec": {"containers": [{"name": "c", "image": "mirror/registration:v0.13.1"}]},
        "status": {"containerStatuses": [{"name": "c", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]},
    }
    assert workloads.pod_trouble(pulling) == "ImagePullBackOff (image mirror/registration:v0.13.1)"
    starting = {
        "spec": {"containers": [{"name": "c", "image": "x"}]},
        "status": {"containerStatuses": [{"name": "c", "state": {"waiting": {"reason": "ContainerCreating"}}}]},
    }
    assert workloads.pod_trouble(starting) is None
    unscheduled = {
        "spec": {"containers": []},
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "message": "0/1 nodes are available"}],
        },
    }
    assert workloads.pod_trouble(unscheduled) == "not scheduled: 0/1 nodes are available"


def test_an_image_the_registry_does_not_have_is_told_from_one_that_cannot_be_reached() -> None:
    def pod(reason: str, message: str) -> dict[str, object]:
        return {
            "spec": {"containers": [{"name": "c", "image": "mirror/registration:v9"}]},
            "status": {"containerStatuses": [{"name": "c", "state": {"waiting": {"reason": reason, "message": message}}}]},
        }

    # The kubelet's back-off message carries the runtime's error (containerd, registry without the image).
    missing = pod(
        "ImagePullBackOff",
        'Back-off pulling image "mirror/registration:v9": ErrImagePull: rpc error: '
        'code = NotFound desc = failed to pull and unpack image "mirror/registration:v9": '
        'failed to resolve reference "mirror/registration:v9": mirror/registration:v9: not found',
    )
    assert workloads.missing_image(missing) == "mirror/registration:v9"
    assert (
        workloads.missing_image(pod("ErrImagePull", "rpc error: code = NotFound desc = ... not found"))
        == "mirror/registration:v9"
    )
    unreachable = pod(
        "ImagePullBackOff",
        'Back-off pulling image "mirror/registration:v9": ErrImagePull: rpc error: '
        "code = Unknown desc = failed to do request: dial tcp 10.0.0.1:443: "
        "connect: connection refused",
    )
    assert workloads.missing_image(unreachable) is None
    assert workloads.missing_image(pod("CrashLoopBackOff", "code = NotFound")) is None


def test_only_pods_of_the_deployments_current_images_say_why_it_is_not_available() -> None:
    """After an image was corrected, the pod still pulling the wrong one is of an earlier rollout."""
    corrected = {"spec": {"template": {"spec": {"containers": [{"name": "op", "image": "right/operator:v1"}]}}}}
    old = {"spec": {"containers": [{"name": "op", "image": "wrong/operator:v1"}]}}
    new = {"spec": {"containers": [{"name": "op", "image": "right/operator:v1"}]}}
    assert not workloads.of_template(corrected, old)
    assert workloads.of_template(corrected, new)
