"""The error taxonomy: what is retried, what is not, what a deadline is, and the line users see.

- transient: retried with backoff until the step's deadline: API 5xx, 429 and 409 Conflict,
  connection errors, and `TransientError` (a failed `clusteradm` run);
- permanent: retrying cannot help (wrong input, missing permission, wrong object): the step fails
  at once; `PermanentError`, any other API status, a certificate the client rejects;
- `DeadlineExceeded`: the step's goal was not reached in time; it says what was still missing.

Every failure of a step becomes one `Failure`: `ITS <name>: step <step> failed: <cause>`.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
from dataclasses import dataclass

import urllib3.exceptions
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

# By status class: the server's trouble (5xx), too many requests (429), too early (425), and a
# concurrent writer (409 Conflict: KubeFlex, the transport controller got there first) pass; any other
# 4xx is about the request, which a retry repeats. No status: the client's own failure to talk.
TRANSIENT_CLIENT_STATUS = frozenset({409, 425, 429})


class TransientError(Exception):
    """Worth another try: the cause may go away by itself (a failed command run, for one)."""


class PermanentError(Exception):
    """Retrying cannot help: wrong input, missing permission, wrong object."""


class DeadlineExceeded(Exception):
    """The step's goal was not reached before the ITS's deadline; str() says what was missing."""


@dataclass(frozen=True)
class Failure:
    """How one ITS failed. `line` is the one line users see, everywhere it is shown."""

    its: str
    step: str
    cause: str
    permanent: bool

    @property
    def line(self) -> str:
        return f"ITS {self.its}: step {self.step} failed: {self.cause}"


def api_reason(exc: ApiException) -> str:
    """The Status reason (AlreadyExists, NotFound, ...) of an API error response."""
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return ""
    return str(body.get("reason", "")) if isinstance(body, dict) else ""


# The API server's own words when an admission webhook did not answer (apiserver's
# webhookerrors): `failed calling webhook "<name>": failed to call webhook: <Verb> "<url>": <why>`.
# Only its webhook name and network error are shown: they are the server's, never the request's.
WEBHOOK_CALL_FAILED = re.compile(r'failed calling webhook "([^"]+)": (?:failed to call webhook: )?(?:\w+ "[^"]*": )?(.*)')
WEBHOOK_WHY_MAX = 160


def webhook_call_failure(exc: ApiException) -> str | None:
    """`admission webhook <name> did not answer: <why>` for a 500 the API server gave because a
    webhook it must call failed, else None."""
    if exc.status != 500 or api_reason(exc) != "InternalError":
        return None
    try:
        message = str(json.loads(exc.body or "{}").get("message", ""))
    except (AttributeError, TypeError, ValueError):
        return None
    found = WEBHOOK_CALL_FAILED.search(message.splitlines()[0] if message else "")
    if found is None:
        return None
    return f"admission webhook {found.group(1)} did not answer: {found.group(2)[:WEBHOOK_WHY_MAX]}"


def rejected_certificate(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate error behind exc, if the client rejected the server's certificate. The
    Kubernetes client raises it wrapped: ApiException(status 0) from SSLError(SSLCertVerificationError),
    or MaxRetryError(reason=SSLError(...)) when urllib3 retried."""
    seen: BaseException | None = exc
    for _ in range(8):  # the wrapping is a few levels deep; a cycle must not loop forever
        if seen is None or isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        if isinstance(seen, urllib3.exceptions.MaxRetryError):
            seen = seen.reason
        elif isinstance(seen, urllib3.exceptions.SSLError) and seen.args and isinstance(seen.args[0], BaseException):
            seen = seen.args[0]
        else:
            seen = seen.__cause__ or seen.__context__
    return None


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TransientError):
        return True
    if rejected_certificate(exc) is not None:
        return False  # the server's certificate will not become trusted by waiting
    if isinstance(exc, ApiException):
        if exc.status == 409 and api_reason(exc) == "AlreadyExists":
            return False  # the object is there: retrying a create cannot help
        return not exc.status or exc.status >= 500 or exc.status in TRANSIENT_CLIENT_STATUS
    return isinstance(
        exc,
        urllib3.exceptions.HTTPError | ConnectionError | TimeoutError | socket.gaierror | http.client.HTTPException,
    )


def retry_after(exc: BaseException) -> float:
    """The seconds a 429 or 503 response asks a client to wait (its Retry-After header), else 0."""
    if isinstance(exc, ApiException) and exc.status in (429, 503) and exc.headers:
        try:
            return max(0.0, float(exc.headers.get("Retry-After", 0)))
        except (TypeError, ValueError):
            return 0.0
    return 0.0


def is_permanent(exc: BaseException) -> bool:
    """A failure that another run of the hook would meet again: not transient, and no deadline ran out."""
    return not (is_transient(exc) or isinstance(exc, DeadlineExceeded))


def cause(exc: BaseException) -> str:
    """The cause for the failure line. Our own errors say it themselves; anything else is named
    by its kind and first line, never with request or response bodies (they may hold credentials),
    but for the webhook that did not answer and why, the API server's own words."""
    if (rejected := rejected_certificate(exc)) is not None:
        return f"the server's certificate is not trusted: {rejected.verify_message or rejected.reason or 'verify failed'}"
    if isinstance(exc, ApiException):
        return webhook_call_failure(exc) or f"API error {exc.status} {(exc.reason or '').strip()}".strip()
    if isinstance(exc, TransientError | PermanentError | DeadlineExceeded | ConfigException):
        return str(exc)
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        return f"cannot connect: {type(exc.reason).__name__}"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def failure(its: str, step: str, exc: BaseException) -> Failure:
    return Failure(its=its, step=step, cause=cause(exc), permanent=is_permanent(exc))
