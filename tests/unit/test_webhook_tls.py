"""The webhook's self-managed TLS: certificates a TLS client accepts, renewal at a third of the lifetime, CA rotation
without a gap, one certificate for every replica (compare-and-swap on the Secret), files and caBundle kept in step."""

from __future__ import annotations

import base64
import socket
import ssl
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from rightsizer.adapters.k8s import TemporaryApiError
from rightsizer.adapters.settings import OperatorSettings
from rightsizer.adapters.webhook_tls import (
    CA_VALIDITY,
    SERVING_VALIDITY,
    WEBHOOK_KINDS,
    SelfManagedTls,
    certificate_names,
    from_secret_data,
    issue_serving,
    new_ca,
    renewal_reason,
    renewed,
    to_secret_data,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SERVICE_NAMES = ["rightsizer-webhook", "rightsizer-webhook.rs-system", "rightsizer-webhook.rs-system.svc"]


def handshake(material_pem: tuple[bytes, bytes], ca_bundle: bytes, server_name: str, tmp_path: Path) -> str:
    """Serve the pair on loopback and connect as the API server would (verify the chain and the name)."""
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert_file.write_bytes(material_pem[0])
    key_file.write_bytes(material_pem[1])
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_file, key_file)
    client_ctx = ssl.create_default_context(cadata=ca_bundle.decode())
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            try:
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                pass

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            with (
                socket.create_connection(("127.0.0.1", port)) as raw,
                client_ctx.wrap_socket(raw, server_hostname=server_name) as tls,
            ):
                tls.send(b"x")
                return str(tls.version())
        finally:
            thread.join(timeout=5)


@pytest.mark.parametrize("server_name", ["rightsizer-webhook.rs-system.svc", "127.0.0.1"])
def test_a_tls_client_trusting_the_bundle_accepts_the_serving_certificate(server_name: str, tmp_path: Path) -> None:
    material = renewed(None, [*SERVICE_NAMES, "127.0.0.1"], datetime.now(UTC))
    assert handshake((material.serving.cert_pem, material.serving.key_pem), material.ca_bundle, server_name, tmp_path)


def test_a_name_not_in_the_certificate_is_refused(tmp_path: Path) -> None:
    material = renewed(None, SERVICE_NAMES, datetime.now(UTC))
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake((material.serving.cert_pem, material.serving.key_pem), material.ca_bundle, "evil.example", tmp_path)


def test_serving_certificate_shape() -> None:
    ca = new_ca(NOW)
    serving = issue_serving(ca, [*SERVICE_NAMES, "127.0.0.1"], NOW).cert
    assert serving.issuer == ca.cert.subject
    assert not serving.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert serving.not_valid_after_utc == NOW + SERVING_VALIDITY
    san = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == SERVICE_NAMES
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


def test_a_serving_certificate_never_outlives_its_ca() -> None:
    ca = new_ca(NOW, validity=timedelta(days=30))
    assert issue_serving(ca, SERVICE_NAMES, NOW).cert.not_valid_after_utc == ca.cert.not_valid_after_utc


@pytest.mark.parametrize(
    ("age", "names", "reason"),
    [
        (timedelta(0), SERVICE_NAMES, None),
        (SERVING_VALIDITY * 0.6, SERVICE_NAMES, None),  # 40 % of the lifetime left
        (SERVING_VALIDITY * 0.7, SERVICE_NAMES, "the serving certificate expires"),  # 30 % left: renew
        (SERVING_VALIDITY * 2, SERVICE_NAMES, "the serving certificate expires"),  # long expired
        (timedelta(0), [*SERVICE_NAMES, "10.0.0.7"], "does not name 10.0.0.7"),  # the URL host changed
        (CA_VALIDITY * 0.7, SERVICE_NAMES, "the CA expires"),
    ],
)
def test_renewal_reason(age: timedelta, names: list[str], reason: str | None) -> None:
    material = renewed(None, SERVICE_NAMES, NOW)
    found = renewal_reason(material, names, NOW + age)
    assert (found is None) if reason is None else (found is not None and reason in found)


def test_a_certificate_signed_by_another_ca_is_replaced() -> None:
    ours, theirs = renewed(None, SERVICE_NAMES, NOW), renewed(None, SERVICE_NAMES, NOW)
    mixed = type(ours)(ca=ours.ca, serving=theirs.serving, ca_bundle=ours.ca_bundle)
    assert renewal_reason(mixed, SERVICE_NAMES, NOW) == "the serving certificate is not signed by the CA"


def test_renewal_keeps_the_ca_until_the_ca_itself_is_due() -> None:
    first = renewed(None, SERVICE_NAMES, NOW)
    second = renewed(first, SERVICE_NAMES, NOW + SERVING_VALIDITY * 0.7)
    assert second.ca == first.ca and second.ca_bundle == first.ca_bundle
    assert second.serving.cert.serial_number != first.serving.cert.serial_number


def test_ca_rotation_keeps_the_previous_ca_trusted_until_it_expires() -> None:
    first = renewed(None, SERVICE_NAMES, NOW)
    later = NOW + CA_VALIDITY * 0.7
    second = renewed(first, SERVICE_NAMES, later)
    assert second.ca != first.ca
    bundle = x509.load_pem_x509_certificates(second.ca_bundle)
    assert [c.subject for c in bundle] == [second.ca.cert.subject, first.ca.cert.subject]
    assert bundle[0] == second.ca.cert and bundle[1] == first.ca.cert
    third = renewed(second, SERVICE_NAMES, NOW + CA_VALIDITY + timedelta(days=1))  # the first CA has expired
    assert first.ca.cert not in x509.load_pem_x509_certificates(third.ca_bundle)


def test_secret_round_trip_and_damaged_secrets() -> None:
    material = renewed(None, SERVICE_NAMES, NOW)
    data = to_secret_data(material)
    assert from_secret_data(data) == material
    assert from_secret_data(None) is None
    assert from_secret_data({k: v for k, v in data.items() if k != "ca.key"}) is None
    assert from_secret_data({**data, "tls.crt": base64.b64encode(b"not a certificate").decode()}) is None


def test_certificate_names_add_the_url_host_once() -> None:
    config = OperatorSettings(webhook_tls_dns_names=SERVICE_NAMES, webhook_url_host="127.0.0.1")
    assert certificate_names(config) == [*SERVICE_NAMES, "127.0.0.1"]
    config = OperatorSettings(webhook_tls_dns_names=SERVICE_NAMES, webhook_url_host=SERVICE_NAMES[0])
    assert certificate_names(config) == SERVICE_NAMES


# --- the I/O side, against an in-memory API ------------------------------------------------------------------------


class FakeKube:
    """Secrets with resourceVersions (compare-and-swap like the API server) and webhook configurations."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], tuple[dict[str, str], int]] = {}
        self.ca_bundles: dict[tuple[str, str], bytes] = {(kind, "rightsizer"): b"" for kind in WEBHOOK_KINDS}
        self.writes = 0
        self.before_write: list[tuple[str, str, dict[str, str]]] = []  # a rival replica's write, injected once

    def read_secret(self, namespace: str, name: str) -> tuple[dict[str, str] | None, str | None]:
        found = self.secrets.get((namespace, name))
        return (dict(found[0]), str(found[1])) if found else (None, None)

    def write_secret(
        self,
        namespace: str,
        name: str,
        data: Mapping[str, str],
        *,
        resource_version: str | None,
        secret_type: str = "Opaque",
    ) -> bool:
        while self.before_write:
            self._store(*self.before_write.pop())
        current = self.secrets.get((namespace, name))
        if (current is None) != (resource_version is None) or (current and str(current[1]) != resource_version):
            return False  # AlreadyExists or Conflict
        self._store(namespace, name, dict(data))
        return True

    def _store(self, namespace: str, name: str, data: dict[str, str]) -> None:
        version = self.secrets.get((namespace, name), ({}, 0))[1] + 1
        self.secrets[(namespace, name)] = (data, version)
        self.writes += 1

    def set_webhook_ca_bundle(self, kind: str, name: str, ca_bundle: bytes) -> bool:
        if (kind, name) not in self.ca_bundles or self.ca_bundles[(kind, name)] == ca_bundle:
            return False
        self.ca_bundles[(kind, name)] = ca_bundle
        return True


def manager(kube: FakeKube, tmp_path: Path, **settings: Any) -> SelfManagedTls:
    config = OperatorSettings(
        operator_namespace="rs-system",
        webhook_tls_dns_names=SERVICE_NAMES,
        webhook_configuration_name="rightsizer",
        webhook_tls_directory=tmp_path,
        **settings,
    )
    return SelfManagedTls(kube, config)


def test_first_start_creates_the_secret_registers_the_ca_and_writes_the_files(tmp_path: Path) -> None:
    kube = FakeKube()
    files = manager(kube, tmp_path).ensure(NOW)
    stored = from_secret_data(kube.secrets[("rs-system", "rightsizer-webhook-tls")][0])
    assert stored is not None
    assert files.cert.read_bytes() == stored.serving.cert_pem and files.key.read_bytes() == stored.serving.key_pem
    assert files.ca.read_bytes() == stored.ca_bundle
    assert oct(files.key.stat().st_mode & 0o777) == "0o600"
    assert all(bundle == stored.ca_bundle for bundle in kube.ca_bundles.values())


def test_a_restart_reuses_the_secret_and_writes_nothing(tmp_path: Path) -> None:
    kube = FakeKube()
    manager(kube, tmp_path / "a").ensure(NOW)
    writes, secret = kube.writes, dict(kube.secrets)
    manager(kube, tmp_path / "b").ensure(NOW + timedelta(days=30))
    assert kube.writes == writes and kube.secrets == secret


def test_a_due_certificate_is_renewed_and_the_files_follow(tmp_path: Path) -> None:
    kube = FakeKube()
    tls = manager(kube, tmp_path)
    first = tls.ensure(NOW).cert.read_bytes()
    second = tls.ensure(NOW + SERVING_VALIDITY * 0.7).cert.read_bytes()
    assert first != second
    assert x509.load_pem_x509_certificate(second).not_valid_before_utc > NOW


def test_two_replicas_starting_together_serve_one_certificate(tmp_path: Path) -> None:
    """The rival writes the Secret between our read and our write: we lose the compare-and-swap and adopt its."""
    kube = FakeKube()
    rival = renewed(None, SERVICE_NAMES, NOW)
    kube.before_write.append(("rs-system", "rightsizer-webhook-tls", to_secret_data(rival)))
    files = manager(kube, tmp_path).ensure(NOW)
    assert files.cert.read_bytes() == rival.serving.cert_pem
    assert kube.ca_bundles[(WEBHOOK_KINDS[0], "rightsizer")] == rival.ca_bundle


class AlwaysOutrun(FakeKube):
    """Another replica wins every compare-and-swap of the Secret."""

    def write_secret(
        self,
        namespace: str,
        name: str,
        data: Mapping[str, str],
        *,
        resource_version: str | None,
        secret_type: str = "Opaque",
    ) -> bool:
        return False


def test_a_secret_that_keeps_changing_is_a_temporary_error(tmp_path: Path) -> None:
    tls = manager(AlwaysOutrun(), tmp_path)
    with pytest.raises(TemporaryApiError):
        tls.ensure(NOW)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"operator_namespace": None}, "RIGHTSIZER_OPERATOR_NAMESPACE"),
        ({"webhook_tls_dns_names": []}, "RIGHTSIZER_WEBHOOK_TLS_DNS_NAMES"),
    ],
)
def test_missing_settings_are_named(settings: dict[str, Any], message: str, tmp_path: Path) -> None:
    config: dict[str, Any] = {
        "operator_namespace": "rs-system",
        "webhook_tls_dns_names": SERVICE_NAMES,
        "webhook_tls_directory": tmp_path,
        **settings,
    }
    with pytest.raises(ValueError, match=message):
        SelfManagedTls(FakeKube(), OperatorSettings(**config))
