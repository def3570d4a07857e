"""Wait for objects to reach a state by list + watch, the way `kubectl wait` does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from .deadline import Deadline, call
from .errors import DeadlineExceeded, cause, is_transient
from .log import EventLog

# What a check returns: None when the wait is over, else a short text of what is still missing.
Check = Callable[[dict[str, dict[str, Any]]], str | None]

PROGRESS_EVERY_S = 10.0


def condition_status(obj: dict[str, Any], cond_type: str) -> str | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == cond_type:
            return str(cond.get("status"))
    return None


def condition_reason(obj: dict[str, Any], cond_type: str) -> str:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == cond_type:
            return f"{cond.get('reason') or ''} {cond.get('message') or ''}".strip()
    return ""


def crds_pending(names: tuple[str, ...], objects: dict[str, dict[str, Any]]) -> str | None:
    """A check for CRDs: Established, not merely created (upstream learned that the hard way)."""
    missing = [name for name in names if condition_status(objects.get(name, {}), "Established") != "True"]
    return f"CRDs not Established: {', '.join(missing)}" if missing else None


def _name(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def list_objects(list_fn: Callable[..., Any], **params: Any) -> dict[str, Any]:
    """A list as plain JSON (kube.lister's): the client's models would cost megabytes and seconds of CPU
    for a list of CRDs with their schemas, once per ITS, and the hook only reads a few fields."""
    return cast(dict[str, Any], list_fn(**params))


def wait_until(
    list_fn: Callable[..., Any],
    check: Check,
    deadline: Deadline,
    log: EventLog,
    step: str,
    what: str,
    field_selector: str | None = None,
    explain: Callable[[], str | None] | None = None,
) -> dict[str, dict[str, Any]]:
    """List, then watch from the list's resourceVersion until check() is satisfied. list_fn is a
    kube.lister (which kubernetes.watch drives as it drives the typed API classes' list functions).

    Returns the objects seen (by name). Raises DeadlineExceeded with what is still missing,
    or the first permanent API error. Progress is logged every PROGRESS_EVERY_S seconds, with why
    it is missing when `explain` says (it may raise, to end the wait with a permanent cause).
    """
    selector = {"field_selector": field_selector} if field_selector else {}
    pending: str | None = what
    started = False
    while True:
        listed = call(lambda: list_objects(list_fn, **selector), deadline, log, step, f"listing for {what}")
        objects = {_name(obj): obj for obj in listed.get("items") or []}
        pending = check(objects)
        if pending is None:
            return objects
        if not started:  # a wait that is not over at once says so when it starts
            log.info(step, f"waiting for {what}", waited_s=round(deadline.elapsed(), 1), missing=pending)
            started = True
        version = (listed.get("metadata") or {}).get("resourceVersion")
        try:
            while True:
                if deadline.expired():
                    raise DeadlineExceeded(f"timed out after {deadline.elapsed():.0f}s waiting for {what}: {pending}")
                window = max(1, int(min(deadline.remaining(), PROGRESS_EVERY_S)))
                # return_type "object": events stay plain JSON, for the same reason as list_objects.
                stream = watch.Watch(return_type="object").stream(
                    list_fn,
                    resource_version=version,
                    timeout_seconds=window,
                    allow_watch_bookmarks=True,
                    _request_timeout=window + 5,
                    **selector,
                )
                for event in stream:
                    obj = event["raw_object"]
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if event["type"] == "DELETED":
                        objects.pop(_name(obj), None)
                    elif event["type"] in ("ADDED", "MODIFIED"):
                        objects[_name(obj)] = obj
                    pending = check(objects)
                    if pending is None:
                        return objects
                why = explain() if explain is not None else None
                log.info(
                    step,
                    f"waiting for {what}",
                    waited_s=round(deadline.elapsed(), 1),
                    missing=pending,
                    **({"why": why} if why else {}),
                )
        except ApiException as err:
            if err.status != 410 and not is_transient(err):
                raise
            # 410: our resourceVersion is too old; anything else transient: list again.
            log.info(step, f"watch restarted while waiting for {what}", cause=cause(err))
        except Exception as err:
            if not is_transient(err):
                raise
            log.warn(step, f"watch interrupted while waiting for {what}", cause=cause(err))
            if deadline.expired():
                raise DeadlineExceeded(f"timed out after {deadline.elapsed():.0f}s waiting for {what}: {cause(err)}") from err
