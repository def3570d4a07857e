"""What the status add-on chart's OCI registry answers, told by its status codes: against a real HTTP
server on loopback that speaks the distribution API's manifest request and token flow."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ks_its_hooks.errors import PermanentError, TransientError, is_transient
from ks_its_hooks.registry import Registry, basic_auth, bearer_challenge
from ks_its_hooks.spec import StatusAddonSettings

PASSWORD = "s3cr3t-pw"  # noqa: S105 - a test registry's
CREDENTIALS = base64.b64encode(f"robot:{PASSWORD}".encode()).decode()


class FakeRegistry(BaseHTTPRequestHandler):
    """/v2/<repo>/manifests/<tag>: 200 for charts/ocm-status-addon-chart:v1, 404 for other tags, the
    status in the repo name for repo `status/<code>`; repo `private/...` wants a token from /token, which
    it gives for the right Basic credentials only."""

    requests: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        self.requests.append({"path": self.path, "authorization": self.headers.get("Authorization", "")})
        if self.path.startswith("/token"):
            if self.headers.get("Authorization") != f"Basic {CREDENTIALS}":
                return self.answer(401)
            return self.answer(200, {"token": "t0ken"})
        repo, _, tag = self.path.removeprefix("/v2/").partition("/manifests/")
        if repo.startswith("status/"):
            return self.answer(int(repo.split("/")[1]))
        if repo.startswith("private/") and self.headers.get("Authorization") != "Bearer t0ken":
            realm = f"http://{self.headers['Host']}/token"
            return self.answer(401, headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="fake",scope="pull"'})
        self.answer(200 if tag == "v1" else 404, {"schemaVersion": 2})

    def answer(self, status: int, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body or {}).encode()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def serve(server: HTTPServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def plain_registry() -> Iterator[str]:
    FakeRegistry.requests = []
    yield from serve(HTTPServer(("127.0.0.1", 0), FakeRegistry))


@pytest.fixture
def tls_registry(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The same registry over TLS with a self-signed certificate for 127.0.0.1; yields it and that CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "registry")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "tls.crt").write_bytes(pem)
    (tmp_path / "tls.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = HTTPServer(("127.0.0.1", 0), FakeRegistry)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    for address in serve(server):
        yield address, pem.decode()


def settings(
    host: str, repo: str = "charts/ocm-status-addon-chart", version: str = "v1", plain_http: bool = True, ca_bundle: str = ""
) -> StatusAddonSettings:
    return StatusAddonSettings(
        chart=f"oci://{host}/{repo}", version=version, plain_http=plain_http, ca_bundle=ca_bundle, pull_secret=None, values={}
    )


def test_a_chart_that_is_there_passes(plain_registry: str) -> None:
    Registry(settings(plain_registry), None, timeout=10).check()
    assert FakeRegistry.requests[0]["path"] == "/v2/charts/ocm-status-addon-chart/manifests/v1"


def test_a_version_the_registry_does_not_have_is_permanent_naming_the_chart(plain_registry: str) -> None:
    with pytest.raises(PermanentError) as raised:
        Registry(settings(plain_registry, version="v9.9.9"), None, timeout=10).check()
    assert str(raised.value) == (
        f"chart oci://{plain_registry}/charts/ocm-status-addon-chart version v9.9.9 does not exist in its registry (HTTP 404)"
    )


@pytest.mark.parametrize(
    ("status", "transient", "says"),
    [
        (401, False, "refused chart"),
        (403, False, "(statusAddon.chart.pullSecret)"),
        (400, False, "HTTP 400"),
        (429, True, "answered HTTP 429"),
        (503, True, "answered HTTP 503"),
        (500, True, "answered HTTP 500"),
    ],
)
def test_each_answer_is_told_by_its_status(plain_registry: str, status: int, transient: bool, says: str) -> None:
    with pytest.raises(TransientError if transient else PermanentError) as raised:
        Registry(settings(plain_registry, repo=f"status/{status}/chart"), None, timeout=10).check()
    assert is_transient(raised.value) is transient and says in str(raised.value)


def test_a_private_registry_s_token_flow_with_the_pull_secret_s_credentials(plain_registry: str) -> None:
    config = json.dumps({"auths": {plain_registry: {"auth": CREDENTIALS}}})
    Registry(settings(plain_registry, repo="private/chart"), config, timeout=10).check()
    token, manifest = FakeRegistry.requests[1:]
    assert token["path"] == "/token?service=fake&scope=pull" and token["authorization"] == f"Basic {CREDENTIALS}"
    assert manifest["authorization"] == "Bearer t0ken"
    # Without credentials the token service refuses: the registry refused, naming where credentials go.
    with pytest.raises(PermanentError, match=r"refused .* HTTP 401 \(statusAddon\.chart\.pullSecret\)") as raised:
        Registry(settings(plain_registry, repo="private/chart"), None, timeout=10).check()
    assert PASSWORD not in str(raised.value) and CREDENTIALS not in str(raised.value)


def test_a_registry_that_does_not_answer_is_transient() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(TransientError, match=rf"^cannot reach the chart registry 127\.0\.0\.1:{port}: "):
        Registry(settings(f"127.0.0.1:{port}"), None, timeout=10).check()


def test_a_certificate_is_trusted_only_with_its_ca_bundle(tls_registry: tuple[str, str]) -> None:
    address, ca = tls_registry
    with pytest.raises(PermanentError, match=rf"^the chart registry {address} is not trusted \(statusAddon\.chart\.caBundle\)"):
        Registry(settings(address, plain_http=False), None, timeout=10).check()
    Registry(settings(address, plain_http=False, ca_bundle=ca), None, timeout=10).check()


def test_credentials_and_challenges_are_read_as_registries_write_them() -> None:
    assert (
        basic_auth(json.dumps({"auths": {"r:5000": {"username": "u", "password": "p"}}}), "r:5000")
        == "Basic " + base64.b64encode(b"u:p").decode()
    )
    assert basic_auth(json.dumps({"auths": {"other": {"auth": "x"}}}), "r:5000") is None
    assert bearer_challenge('Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull"') == {
        "realm": "https://ghcr.io/token",
        "service": "ghcr.io",
        "scope": "repository:a/b:pull",
    }
    assert bearer_challenge('Basic realm="x"') is None
