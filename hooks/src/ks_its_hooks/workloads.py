"""Whether Deployments are available, and when they are not, why: from their pods, as `kubectl get
pods` says it (an image that cannot be pulled, a pod that cannot be scheduled). Said while waiting, in
the progress lines, and at the deadline; an image the registry does not have fails at once."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

from . import kube, pod
from .client import Client
from .errors import DeadlineExceeded, PermanentError
from .step import Context

# What the container runtime says when the registry answered that it has no image of that name and
# tag (containerd's gRPC status NotFound, in the kubelet's ErrImagePull and back-off messages): a
# wrong registry or tag, which waiting cannot mend. An unreachable registry says something else.
REGISTRY_HAS_NO_IMAGE = "code = NotFound"


def deployment_available(deployment: dict[str, Any]) -> bool:
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    wanted = spec.get("replicas", 1)
    return bool(
        status.get("observedGeneration", 0) >= (deployment.get("metadata") or {}).get("generation", 1)
        and status.get("availableReplicas", 0) >= wanted
        and status.get("updatedReplicas", 0) >= wanted
    )


def deployments_pending(names: tuple[str, ...], objects: dict[str, dict[str, Any]]) -> str | None:
    missing = [name for name in names if name not in objects or not deployment_available(objects[name])]
    return f"Deployments not available: {', '.join(missing)}" if missing else None


def images(spec: dict[str, Any]) -> dict[str, str]:
    """Container name -> image, init containers included, of a pod spec."""
    return {c["name"]: c.get("image", "") for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])}


def of_template(deployment: dict[str, Any], pod: dict[str, Any]) -> bool:
    """The pod runs the Deployment's current images: a pod of an earlier rollout (an image since
    replaced) says nothing about the Deployment now."""
    template = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    return images(pod.get("spec") or {}) == images(template)


def pod_trouble(pod: dict[str, Any]) -> str | None:
    """Why a pod does not run, as `kubectl get pods` says it, with the image it is about."""
    status, named = pod.get("status") or {}, images(pod.get("spec") or {})
    for container in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        state = container.get("state") or {}
        problem = (state.get("waiting") or {}).get("reason") or (state.get("terminated") or {}).get("reason")
        if problem and problem not in ("ContainerCreating", "PodInitializing", "Completed"):
            return f"{problem} (image {named.get(container.get('name', ''), container.get('image', ''))})"
    if status.get("phase") == "Pending":
        scheduled = [c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"]
        if scheduled and scheduled[0].get("status") == "False":
            return f"not scheduled: {scheduled[0].get('message', '')}".strip()
    return None


def missing_image(pod: dict[str, Any]) -> str | None:
    """The image of a container of the pod that its registry does not have, if any."""
    status, named = pod.get("status") or {}, images(pod.get("spec") or {})
    for container in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff") and REGISTRY_HAS_NO_IMAGE in (
            waiting.get("message") or ""
        ):
            return str(named.get(container.get("name", ""), container.get("image", "")))
    return None


def why_not_available(api: Client, namespace: str, names: tuple[str, ...], fix: str) -> str | None:
    """The first of the Deployments that is not available, and why; None when all are. Raises
    PermanentError when the reason is an image its registry does not have, saying `fix`."""
    deployments = {(d.get("metadata") or {}).get("name"): d for d in api.list(kube.DEPLOYMENTS, namespace)}
    for name in names:
        deployment = deployments.get(name)
        if deployment is None:
            return f"Deployment {namespace}/{name} does not exist"
        if deployment_available(deployment):
            continue
        labels = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        selector = ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
        pods = [p for p in api.list(kube.PODS, namespace, label_selector=selector) if of_template(deployment, p)]
        trouble = next((t for t in map(pod_trouble, pods) if t), None)
        line = f"Deployment {name} not available: {trouble or 'no pod of it is ready'}"
        missing = next((image for image in map(missing_image, pods) if image), None)
        if missing:
            raise PermanentError(f"{line}: its registry has no image {missing}; {fix}")
        return line
    return None


def explainer(what: str, why: Callable[[], str | None]) -> Callable[[], str | None]:
    """why(), at best effort: the pods are read to explain a wait, whose outcome does not depend on
    that read. Only a PermanentError, what the pods say cannot get better, is raised."""
    return functools.partial(pod.best_effort, f"find why {what} is not ready", why, raises=(PermanentError,))


@contextlib.contextmanager
def deadline_explained(ctx: Context, what: str, explain: Callable[[], str | None]) -> Iterator[None]:
    """A deadline hit inside says what was awaited and why it is not there (from `explain`, which reads
    the pods: conditions say that something does not run, the pods say why)."""
    try:
        yield
    except DeadlineExceeded as err:
        reason = explain()
        if reason is None:
            raise
        raise DeadlineExceeded(f"timed out after {ctx.deadline.elapsed():.0f}s waiting for {what}: {reason}") from err


def wait_available(ctx: Context, namespace: str, names: tuple[str, ...], what: str, fix: str) -> None:
    """Wait (a watch) until the Deployments are available, saying in each progress line why one is not,
    and at the deadline; `fix` is what a missing image asks the user to change."""
    explain = explainer(what, functools.partial(why_not_available, ctx.space.client, namespace, names, fix))
    with deadline_explained(ctx, what, explain):
        ctx.space.client.wait(kube.DEPLOYMENTS, functools.partial(deployments_pending, names), what, namespace, explain=explain)
