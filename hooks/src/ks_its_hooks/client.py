"""The hook's requests to one cluster (the hosting cluster, or an ITS's space), bound to one run's
deadline and log. It owns what every step needs of the API, once: the one retry policy (errors.py;
`Retry-After` honoured on 429 and 503), a missing object as None, an object that already exists told
by the API's reason, server-side apply as the hook's field manager, and waits by list and watch.
Every request is plain JSON (kube.py), custom resources included."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from . import FIELD_MANAGER, kube, readiness
from .deadline import Deadline, call
from .errors import api_reason
from .kube import Kind
from .log import EventLog

Object = dict[str, Any]


class ChangedSince(Exception):
    """A write conditional on a resourceVersion met a newer one: not retried as it is."""


def changed_since(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except ApiException as err:
        if err.status == 409 and api_reason(err) == "Conflict":
            raise ChangedSince from err
        raise


class Client:
    """`step` names, at each request, the step it is made for (the log's step=)."""

    def __init__(self, api: ApiClient, deadline: Deadline, log: EventLog, step: Callable[[], str]) -> None:
        self.api = api
        self.deadline = deadline
        self.log = log
        self.step = step

    def request(
        self,
        method: str,
        path: str,
        what: str,
        body: Object | None = None,
        text: bool = False,
        content_type: str | None = None,
        **query: Any,
    ) -> Any:
        """The response (JSON, or text with text=True), retried as every call is."""
        return call(
            lambda: kube.request(self.api, method, path, body=body, text=text, content_type=content_type, **query),
            self.deadline,
            self.log,
            self.step(),
            what,
        )

    def get(self, kind: Kind, name: str, namespace: str | None = None) -> Object | None:
        """The object, or None when it does not exist."""
        try:
            return cast(Object, self.request("GET", kind.path(namespace, name), f"reading {kind.describe(name, namespace)}"))
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def list(self, kind: Kind, namespace: str | None = None, **query: Any) -> list[Object]:
        listed = self.request("GET", kind.path(namespace), f"listing {kind.plural}", **query)
        return list((listed or {}).get("items") or [])

    def create(self, kind: Kind, body: Object, namespace: str | None = None, **query: Any) -> Object | None:
        """The created object, or None when one of its name already exists (another writer's, kept as it is)."""
        name = (body.get("metadata") or {}).get("name") or (body.get("metadata") or {}).get("generateName", "")
        try:
            return cast(
                Object,
                self.request(
                    "POST",
                    kind.path(namespace),
                    f"creating {kind.describe(name, namespace)}",
                    body=body,
                    field_manager=FIELD_MANAGER,
                    **query,
                ),
            )
        except ApiException as err:
            if err.status == 409 and api_reason(err) == "AlreadyExists":
                return None
            raise

    def apply(self, kind: Kind, body: Object, namespace: str | None = None) -> Object:
        """Server-side apply of the fields in body, as the hook's field manager (taking them over)."""
        name = body["metadata"]["name"]
        return cast(
            Object,
            self.request(
                "PATCH",
                kind.path(namespace, name),
                f"applying {kind.describe(name, namespace)}",
                body=body,
                content_type="application/apply-patch+yaml",
                field_manager=FIELD_MANAGER,
                force=True,
            ),
        )

    def patch(
        self, kind: Kind, name: str, body: Object, what: str, namespace: str | None = None, strategic: bool = False
    ) -> Object | None:
        """A JSON merge patch, or a strategic merge patch (built-in kinds: lists such as a pod's
        containers merge by name). With metadata.resourceVersion in body it applies to that version only:
        None when the object changed since (409 Conflict), for the caller to decide again on what is
        there now (retrying the same patch could never succeed)."""
        try:
            return cast(
                Object,
                call(
                    lambda: changed_since(
                        lambda: kube.request(
                            self.api,
                            "PATCH",
                            kind.path(namespace, name),
                            body=body,
                            content_type="application/strategic-merge-patch+json"
                            if strategic
                            else "application/merge-patch+json",
                            field_manager=FIELD_MANAGER,
                        )
                    ),
                    self.deadline,
                    self.log,
                    self.step(),
                    what,
                ),
            )
        except ChangedSince:
            return None

    def delete(self, kind: Kind, name: str, namespace: str | None = None) -> bool:
        """Whether there was something to delete (its dependents go in the background)."""
        try:
            self.request(
                "DELETE",
                kind.path(namespace, name),
                f"deleting {kind.describe(name, namespace)}",
                propagation_policy="Background",
            )
        except ApiException as err:
            if err.status == 404:
                return False
            raise
        return True

    def wait(
        self,
        kind: Kind,
        check: readiness.Check,
        what: str,
        namespace: str | None = None,
        name: str | None = None,
        explain: Callable[[], str | None] | None = None,
    ) -> dict[str, Object]:
        """List and watch (one object when `name` is given) until check() is satisfied; see readiness."""
        return readiness.wait_until(
            kube.lister(self.api, kind, namespace),
            check,
            self.deadline,
            self.log,
            self.step(),
            what,
            f"metadata.name={name}" if name else None,
            explain,
        )
