"""Whether the status add-on's chart is in its OCI registry, asked of the registry itself (the OCI
distribution API: one manifest request), so that its answer is a status code, not the wording of a
helm error: no such chart or version, or credentials refused, is permanent; a registry that does not
answer, or answers 429 or 5xx, is transient; a certificate the hook does not trust is permanent."""

from __future__ import annotations

import base64
import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from .errors import PermanentError, TransientError, rejected_certificate
from .spec import StatusAddonSettings

MANIFEST_TYPES = ", ".join(
    ("application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json")
)


@dataclass(frozen=True)
class ChartRef:
    host: str
    repository: str
    version: str
    plain_http: bool

    @property
    def manifest_url(self) -> str:
        return f"{'http' if self.plain_http else 'https'}://{self.host}/v2/{self.repository}/manifests/{self.version}"


def chart_ref(settings: StatusAddonSettings) -> ChartRef:
    host, _, repository = settings.chart.removeprefix("oci://").partition("/")
    return ChartRef(host=host, repository=repository, version=settings.version, plain_http=settings.plain_http)


def basic_auth(registry_json: str | None, host: str) -> str | None:
    """The `Authorization: Basic` value for host from a Docker config (a pull Secret's), if it has one."""
    if registry_json is None:
        return None
    entry = (json.loads(registry_json).get("auths") or {}).get(host) or {}
    if entry.get("auth"):
        return f"Basic {entry['auth']}"
    if entry.get("username"):
        return "Basic " + base64.b64encode(f"{entry['username']}:{entry.get('password', '')}".encode()).decode()
    return None


def bearer_challenge(header: str) -> dict[str, str] | None:
    """The parameters of a `WWW-Authenticate: Bearer realm=...,service=...,scope=...` challenge."""
    if not header.lower().startswith("bearer "):
        return None
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


class Registry:
    """Requests to one chart's registry, with the CA bundle and credentials the chart settings give."""

    def __init__(self, settings: StatusAddonSettings, registry_json: str | None, timeout: float) -> None:
        self.ref = chart_ref(settings)
        self.what = f"chart {settings.chart} version {settings.version}"
        self.basic = basic_auth(registry_json, self.ref.host)
        self.timeout = timeout
        self.context = ssl.create_default_context()
        if settings.ca_bundle:
            self.context.load_verify_locations(cadata=settings.ca_bundle)

    def open(self, url: str, authorization: str | None, accept: str) -> Any:
        headers = {"Accept": accept} | ({"Authorization": authorization} if authorization else {})
        request = urllib.request.Request(url, headers=headers, method="GET")  # noqa: S310 - the chart's own registry
        return urllib.request.urlopen(request, timeout=self.timeout, context=self.context)  # noqa: S310

    def token(self, challenge: dict[str, str]) -> str:
        """A token from the registry's token service (the Docker registry token flow), for the challenge."""
        query = urllib.parse.urlencode([(key, challenge[key]) for key in ("service", "scope") if key in challenge])
        with self.open(f"{challenge['realm']}?{query}", self.basic, "application/json") as response:
            answer = json.loads(response.read())
        return str(answer.get("token") or answer.get("access_token") or "")

    def check(self) -> None:
        """None when the chart's manifest is there; else the error of the taxonomy, naming the chart or
        the registry (and never the credentials)."""
        try:
            try:
                with self.open(self.ref.manifest_url, self.basic, MANIFEST_TYPES):
                    return
            except urllib.error.HTTPError as err:
                challenge = bearer_challenge(err.headers.get("WWW-Authenticate", "")) if err.code == 401 else None
                if challenge is None or "realm" not in challenge:
                    raise
            with self.open(self.ref.manifest_url, f"Bearer {self.token(challenge)}", MANIFEST_TYPES):
                return
        except urllib.error.HTTPError as err:
            raise self.answered(err.code) from err
        except (urllib.error.URLError, OSError, ValueError) as err:
            if (rejected := rejected_certificate(err)) is not None:
                raise PermanentError(
                    f"the chart registry {self.ref.host} is not trusted (statusAddon.chart.caBundle): "
                    f"{rejected.verify_message or rejected.reason}"
                ) from err
            reason = err.reason if isinstance(err, urllib.error.URLError) else err
            raise TransientError(f"cannot reach the chart registry {self.ref.host}: {reason}") from err

    def answered(self, status: int) -> Exception:
        if status == 404:
            return PermanentError(f"{self.what} does not exist in its registry (HTTP 404)")
        if status in (401, 403):
            return PermanentError(
                f"the chart registry {self.ref.host} refused {self.what}: HTTP {status} (statusAddon.chart.pullSecret)"
            )
        if status == 429 or status >= 500:
            return TransientError(f"the chart registry {self.ref.host} answered HTTP {status}")
        return PermanentError(f"the chart registry {self.ref.host} refused {self.what}: HTTP {status}")
