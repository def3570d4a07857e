"""External commands: what they are given stays private, what they say is redacted."""

from __future__ import annotations

import os
import stat

from ks_its_hooks import commands


def test_clusteradm_output_is_redacted() -> None:
    text = "clusteradm join --hub-token abc.0123456789abcdef --hub-apiserver https://x\ntoken: eyJhbGciOiJSUzI1NiJ9.payload.sig"
    redacted = commands.redact(text)
    assert "0123456789abcdef" not in redacted and "eyJhbGciOiJSUzI1NiJ9" not in redacted
    assert "--hub-apiserver https://x" in redacted


def test_private_files_are_0600_in_a_0700_directory_and_removed_with_what_a_command_left() -> None:
    with commands.private_files({"kubeconfig": "secret"}) as paths:
        path = paths["kubeconfig"]
        os.makedirs(os.path.join(os.path.dirname(path), "helm", "cache"))
        open(os.path.join(os.path.dirname(path), "helm", "cache", "left"), "w").close()
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        with open(path) as handle:
            assert handle.read() == "secret"
    assert not os.path.exists(path) and not os.path.exists(os.path.dirname(path))


def test_passwords_and_url_credentials_are_redacted() -> None:
    text = 'Error: GET https://bob:hunter2@registry.example/v2/: unauthorized; {"auth": "Ym9iOmh1bnRlcjI="} password=hunter2'
    redacted = commands.redact(text)
    assert "hunter2" not in redacted and "Ym9iOmh1bnRlcjI=" not in redacted
    assert "https://bob:<redacted>@registry.example/v2/" in redacted
