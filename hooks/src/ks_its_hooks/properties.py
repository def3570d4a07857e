"""Step 3: the `customization-properties` namespace, one ConfigMap per WEC lives there.

The KubeStellar transport controller creates it too, so "already exists" is success and an
existing namespace is never modified.
"""

from __future__ import annotations

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from . import FIELD_MANAGER
from .deadline import Deadline, call
from .log import EventLog
from .manifests import render
from .space import Space

STEP = "customization-properties"
NAMESPACE = "customization-properties"


def ensure(space: Space, deadline: Deadline, log: EventLog) -> bool:
    """Create the namespace if it is absent. Returns whether it was created."""
    core = client.CoreV1Api(space.api)
    try:
        call(lambda: core.read_namespace(NAMESPACE), deadline, log, STEP, "reading the namespace")
        log.info(STEP, "namespace exists", namespace=NAMESPACE)
        return False
    except ApiException as err:
        if err.status != 404:
            raise
    manifest = render("customization-properties.yaml.j2", name=NAMESPACE, manager=FIELD_MANAGER)
    body = client.V1Namespace(metadata=client.V1ObjectMeta(**manifest["metadata"]))
    try:
        call(lambda: core.create_namespace(body, field_manager=FIELD_MANAGER), deadline, log, STEP,
             "creating the namespace")
    except ApiException as err:
        if err.status != 409:
            raise
        log.info(STEP, "namespace was created meanwhile by another writer", namespace=NAMESPACE)
        return False
    log.info(STEP, "namespace created", namespace=NAMESPACE)
    return True
