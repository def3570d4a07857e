"""Errors that end a step, and the split between transient and permanent API failures."""

from __future__ import annotations

import http.client
import json
import socket
import ssl

import urllib3.exceptions
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

# 409: a conflicting writer (KubeFlex, the transport controller) got there first; try again.
TRANSIENT_STATUS = frozenset({409, 425, 429, 500, 502, 503, 504})


class PermanentError(Exception):
    """Retrying cannot help: wrong input, missing permission, wrong object."""


class StepFailed(Exception):
    """A step of one ITS could not reach its goal. str() is the one line users see."""

    def __init__(self, its: str, step: str, cause: str) -> None:
        super().__init__(f"ITS {its}: step {step} failed: {cause}")
        self.its = its
        self.step = step
        self.cause = cause


def api_reason(exc: ApiException) -> str:
    """The Status reason (AlreadyExists, NotFound, ...) of an API error response."""
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return ""
    return str(body.get("reason", "")) if isinstance(body, dict) else ""


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, PermanentError | ConfigException):
        return False
    if isinstance(exc, ApiException):
        if exc.status == 409 and api_reason(exc) == "AlreadyExists":
            return False  # the object is there: retrying a create cannot help
        # status 0 is the client's own failure to talk to the server.
        return exc.status in TRANSIENT_STATUS or not exc.status
    if isinstance(exc, ssl.SSLCertVerificationError):
        return False
    return isinstance(
        exc,
        urllib3.exceptions.HTTPError | ConnectionError | TimeoutError | socket.gaierror | http.client.HTTPException,
    )


def describe(exc: BaseException) -> str:
    """A short cause for the failure line; never includes request or response bodies."""
    if isinstance(exc, ApiException):
        reason = (exc.reason or "").strip()
        return f"API error {exc.status} {reason}".strip()
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        return f"cannot connect: {type(exc.reason).__name__}"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
