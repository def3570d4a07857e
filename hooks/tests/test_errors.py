"""The error taxonomy: transient or permanent, and the one line a failure becomes."""

from __future__ import annotations

import datetime
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ks_its_hooks.errors import (
    DeadlineExceeded,
    Failure,
    PermanentError,
    TransientError,
    cause,
    failure,
    is_permanent,
    is_transient,
)
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException


def api_error(status: int, reason: str = "", body: dict[str, str] | None = None) -> ApiException:
    exc = ApiException(status=status, reason=reason)
    exc.body = json.dumps(body) if body else None
    return exc


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (api_error(503), True),
        (api_error(500), True),
        (api_error(429), True),
        (api_error(409, body={"reason": "Conflict"}), True),
        (api_error(0), True),
        (urllib3.exceptions.MaxRetryError(None, "/", ConnectionRefusedError()), True),
        (urllib3.exceptions.ProtocolError("reset"), True),
        (ConnectionResetError(), True),
        (TimeoutError(), True),
        (TransientError("clusteradm init exited 1"), True),
        (api_error(409, body={"reason": "AlreadyExists"}), False),
        (api_error(403), False),
        (api_error(404), False),
        (PermanentError("no"), False),
        (ConfigException("no"), False),
        (ssl.SSLCertVerificationError("bad certificate"), False),
        (ValueError("x"), False),
        (DeadlineExceeded("timed out"), False),
    ],
)
def test_transient_errors_are_told_from_permanent_ones(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_a_deadline_is_neither_transient_nor_permanent() -> None:
    # Another run gets a new deadline: a Job retry may get past it, so it is not permanent.
    assert not is_permanent(DeadlineExceeded("timed out"))
    assert not is_permanent(api_error(503))
    assert is_permanent(PermanentError("no"))
    assert is_permanent(api_error(403, "Forbidden"))


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (PermanentError("bootstrap Secret ns/b not found"), "bootstrap Secret ns/b not found"),
        (TransientError("clusteradm init exited 1: boom"), "clusteradm init exited 1: boom"),
        (DeadlineExceeded("timed out after 9s waiting for x: y"), "timed out after 9s waiting for x: y"),
        (api_error(403, "Forbidden", {"message": "token abc is secret"}), "API error 403 Forbidden"),
        (
            api_error(
                500,
                "Internal Server Error",
                {
                    "reason": "InternalError",
                    "message": 'Internal error occurred: failed calling webhook "manifestworkvalidators.admission.work.'
                    'open-cluster-management.io": failed to call webhook: Post "https://cluster-manager-work-webhook.'
                    'open-cluster-management-hub.svc:9443/validate?timeout=10s": dial tcp 10.244.0.9:9443: connect: '
                    "connection refused",
                },
            ),
            "admission webhook manifestworkvalidators.admission.work.open-cluster-management.io did not answer: "
            "dial tcp 10.244.0.9:9443: connect: connection refused",
        ),
        (
            api_error(500, "Internal Server Error", {"reason": "InternalError", "message": "etcdserver: token abc"}),
            "API error 500 Internal Server Error",
        ),
        (urllib3.exceptions.MaxRetryError(None, "/", ConnectionRefusedError()), "cannot connect: ConnectionRefusedError"),
        (KeyError("status"), "KeyError: 'status'"),
        (RuntimeError(), "RuntimeError"),
        (ValueError("first line\nsecond line"), "ValueError: first line"),
    ],
)
def test_the_cause_says_what_went_wrong_and_never_a_response_body(exc: BaseException, text: str) -> None:
    assert cause(exc) == text


def test_a_failure_is_one_line_naming_the_its_and_the_step() -> None:
    failed = failure("its1", "ocm-hub", PermanentError("the space has no ClusterManager cluster-manager"))
    assert failed == Failure("its1", "ocm-hub", "the space has no ClusterManager cluster-manager", permanent=True)
    assert failed.line == "ITS its1: step ocm-hub failed: the space has no ClusterManager cluster-manager"
    assert not failure("its1", "space", DeadlineExceeded("timed out")).permanent


@pytest.fixture
def untrusted_server(tmp_path: Path) -> Iterator[str]:
    """An HTTPS server on loopback whose self-signed certificate no client here trusts."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "untrusted")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "tls.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = HTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://localhost:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("retries", [False, None], ids=["no-retries", "urllib3-retries"])
def test_a_rejected_server_certificate_is_permanent_and_says_so(untrusted_server: str, retries: bool | None) -> None:
    """As the Kubernetes client raises it (wrapped by urllib3 and the client), not a bare ssl error."""
    configuration = client.Configuration(host=untrusted_server)
    configuration.retries = retries
    with pytest.raises(Exception) as raised:
        client.VersionApi(client.ApiClient(configuration)).get_code(_request_timeout=10)
    assert not is_transient(raised.value)
    assert is_permanent(raised.value)
    assert cause(raised.value).startswith("the server's certificate is not trusted: self-signed certificate")
