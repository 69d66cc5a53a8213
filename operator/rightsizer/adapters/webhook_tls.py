"""The admission webhook's own TLS: a CA and a serving certificate that the operator creates, keeps in a Secret in its
namespace, renews before expiry, writes to files for kopf's WebhookServer and registers as the `caBundle` of its
webhook configurations. The Helm chart's default (`webhook.tls.mode: selfManaged`); cert-manager is the alternative.

Why a Secret: every replica (HA) and every restart serves the same certificate, so the caBundle the API server trusts
stays valid across restarts, and two replicas starting together agree on one certificate (the Secret is created or
renewed by compare-and-swap on its resourceVersion: the loser adopts the winner's).

Why renew at a third of the lifetime: a year-long serving certificate is replaced with four months to spare, so even
an operator that was down for weeks renews long before the API server would refuse the handshake. kopf's
WebhookServer re-reads its certificate files when they change, so a renewal needs no restart. `ensure` is re-run
every RIGHTSIZER_WEBHOOK_TLS_CHECK_INTERVAL_SECONDS by a supervised loop (controller.supervision: retried with backoff
after any error, reported by /healthz when it stops completing). A renewed CA is added
to the caBundle before the certificate it signs is served, and the previous CA stays in the bundle until it expires,
so no admission request fails in between.

The certificate logic is pure (functions of the time and the names); `SelfManagedTls` does the I/O, all of it through
rightsizer.adapters.k8s.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from rightsizer.adapters.k8s import TemporaryApiError
from rightsizer.adapters.kube_api import WebhookTlsApi
from rightsizer.adapters.settings import OperatorSettings

log = logging.getLogger("rightsizer.adapters.webhook_tls")

CA_VALIDITY = timedelta(days=3650)
SERVING_VALIDITY = timedelta(days=365)
RENEW_AT_REMAINING = 1 / 3  # renew once less than this fraction of a certificate's lifetime is left
BACKDATE = timedelta(minutes=5)  # tolerate clock skew between the operator and the API server
CA_COMMON_NAME = "rightsizer-webhook-ca"
CAS_ATTEMPTS = 5

# Keys of the Secret: the kubernetes.io/tls pair plus the CA (ca.crt may hold a previous CA too, until it expires).
TLS_CRT, TLS_KEY, CA_CRT, CA_KEY = "tls.crt", "tls.key", "ca.crt", "ca.key"
WEBHOOK_KINDS = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")


@dataclass(frozen=True)
class KeyPair:
    cert_pem: bytes
    key_pem: bytes

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)


@dataclass(frozen=True)
class ServingMaterial:
    """What the Secret holds: the CA, the serving pair it signed, and the bundle the API server should trust."""

    ca: KeyPair
    serving: KeyPair
    ca_bundle: bytes  # the current CA, then any previous CA that has not expired


# --- pure: certificates ------------------------------------------------------------------------------------------


def _private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _subject_alternative_names(names: Sequence[str]) -> list[x509.GeneralName]:
    alternatives: list[x509.GeneralName] = []
    for name in names:
        try:
            alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternatives.append(x509.DNSName(name))
    return alternatives


def new_ca(now: datetime, validity: timedelta = CA_VALIDITY) -> KeyPair:
    key = _private_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def issue_serving(ca: KeyPair, names: Sequence[str], now: datetime, validity: timedelta = SERVING_VALIDITY) -> KeyPair:
    """A serving certificate for `names` (DNS names or IP addresses), never outliving the CA that signs it."""
    if not names:
        raise ValueError("a serving certificate needs at least one DNS name or IP address")
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the webhook CA key is not an EC key")
    ca_cert = ca.cert
    key = _private_key()
    not_after = min(now + validity, ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(_subject_alternative_names(names)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _due(cert: x509.Certificate, now: datetime) -> bool:
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    return cert.not_valid_after_utc - now < lifetime * RENEW_AT_REMAINING


def _names_of(cert: x509.Certificate) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(n) for n in san.get_values_for_type(x509.DNSName)} | {
        str(ip) for ip in san.get_values_for_type(x509.IPAddress)
    }


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def renewal_reason(material: ServingMaterial, names: Sequence[str], now: datetime) -> str | None:
    """Why the serving certificate must be replaced, or None when it is good to serve."""
    serving, ca = material.serving.cert, material.ca.cert
    if _due(ca, now):
        return f"the CA expires {ca.not_valid_after_utc:%Y-%m-%d}"
    if not _signed_by(serving, ca):
        return "the serving certificate is not signed by the CA"
    if _due(serving, now):
        return f"the serving certificate expires {serving.not_valid_after_utc:%Y-%m-%d}"
    missing = set(_normalised(names)) - _names_of(serving)
    if missing:
        return f"the serving certificate does not name {', '.join(sorted(missing))}"
    return None


def _normalised(names: Sequence[str]) -> list[str]:
    out = []
    for name in names:
        try:
            out.append(str(ipaddress.ip_address(name)))
        except ValueError:
            out.append(name)
    return out


def _unexpired_pems(bundle: bytes, now: datetime) -> list[bytes]:
    return [
        cert.public_bytes(serialization.Encoding.PEM)
        for cert in x509.load_pem_x509_certificates(bundle)
        if cert.not_valid_after_utc > now
    ]


def renewed(current: ServingMaterial | None, names: Sequence[str], now: datetime) -> ServingMaterial:
    """The material to serve next: a fresh serving certificate, under a fresh CA when the CA itself is due (the
    previous CA stays in the bundle while it is valid, so certificates it signed are trusted until replaced)."""
    ca = current.ca if current is not None and not _due(current.ca.cert, now) else new_ca(now)
    bundle = [ca.cert_pem]
    if current is not None:
        bundle += [pem for pem in _unexpired_pems(current.ca_bundle, now) if pem != ca.cert_pem]
    return ServingMaterial(ca=ca, serving=issue_serving(ca, names, now), ca_bundle=b"".join(bundle))


def to_secret_data(material: ServingMaterial) -> dict[str, str]:
    raw = {
        TLS_CRT: material.serving.cert_pem,
        TLS_KEY: material.serving.key_pem,
        CA_CRT: material.ca_bundle,
        CA_KEY: material.ca.key_pem,
    }
    return {key: base64.b64encode(value).decode("ascii") for key, value in raw.items()}


def from_secret_data(data: dict[str, str] | None) -> ServingMaterial | None:
    """The material a Secret holds, or None when it is incomplete or unreadable (then it is replaced)."""
    if not data or any(key not in data for key in (TLS_CRT, TLS_KEY, CA_CRT, CA_KEY)):
        return None
    try:
        raw = {key: base64.b64decode(data[key]) for key in (TLS_CRT, TLS_KEY, CA_CRT, CA_KEY)}
        cas = x509.load_pem_x509_certificates(raw[CA_CRT])
        material = ServingMaterial(
            ca=KeyPair(cas[0].public_bytes(serialization.Encoding.PEM), raw[CA_KEY]),
            serving=KeyPair(raw[TLS_CRT], raw[TLS_KEY]),
            ca_bundle=raw[CA_CRT],
        )
        material.serving.cert  # noqa: B018 - parse now, so a corrupt certificate is replaced, not served
    except ValueError:
        return None
    return material


def certificate_names(config: OperatorSettings) -> list[str]:
    """The names the API server may use to reach the webhook: the Service's DNS names, and the URL host if set."""
    names = list(config.webhook_tls_dns_names)
    if config.webhook_url_host and config.webhook_url_host not in names:
        names.append(config.webhook_url_host)
    return names


# --- I/O: the Secret, the files, the caBundle -------------------------------------------------------------------


@dataclass(frozen=True)
class ServingFiles:
    cert: Path
    key: Path
    ca: Path


class SelfManagedTls:
    """Keeps the webhook's serving certificate in the Secret, on disk and in the webhook configurations."""

    def __init__(self, kube: WebhookTlsApi, config: OperatorSettings) -> None:
        if not config.operator_namespace:
            raise ValueError(
                "RIGHTSIZER_OPERATOR_NAMESPACE is required with RIGHTSIZER_WEBHOOK_SELF_MANAGED_TLS: the webhook "
                "certificate Secret lives in the operator's namespace"
            )
        names = certificate_names(config)
        if not names:
            raise ValueError(
                "RIGHTSIZER_WEBHOOK_TLS_DNS_NAMES (or RIGHTSIZER_WEBHOOK_URL_HOST) must name the webhook's host"
            )
        self.kube = kube
        self.namespace = config.operator_namespace
        self.secret = config.webhook_tls_secret
        self.configuration = config.webhook_configuration_name
        self.names = names
        directory = config.webhook_tls_directory or Path(tempfile.mkdtemp(prefix="rightsizer-webhook-"))
        self.files = ServingFiles(directory / TLS_CRT, directory / TLS_KEY, directory / CA_CRT)

    def ensure(self, now: datetime | None = None) -> ServingFiles:
        """Read (or create, or renew) the Secret, register its CA bundle, then write the files kopf serves."""
        material = self._current_material(now or datetime.now(UTC))
        # The API server must trust the CA before a certificate it signed is served (see the module docstring).
        for kind in WEBHOOK_KINDS:
            if self.kube.set_webhook_ca_bundle(kind, self.configuration, material.ca_bundle):
                log.info("caBundle of %s %s updated", kind, self.configuration)
        self._write_files(material)
        return self.files

    def _current_material(self, now: datetime) -> ServingMaterial:
        for _ in range(CAS_ATTEMPTS):
            data, version = self.kube.read_secret(self.namespace, self.secret)
            current = from_secret_data(data)
            reason = "there is none" if current is None else renewal_reason(current, self.names, now)
            if current is not None and reason is None:
                return current
            fresh = renewed(current, self.names, now)
            if self.kube.write_secret(
                self.namespace,
                self.secret,
                to_secret_data(fresh),
                resource_version=version,
                secret_type="kubernetes.io/tls",
            ):
                log.info("webhook serving certificate for %s issued (%s)", ", ".join(self.names), reason)
                return fresh
            log.info("webhook certificate Secret changed meanwhile (another replica?); reading it again")
        raise TemporaryApiError(f"Secret {self.namespace}/{self.secret} keeps changing; retrying later")

    def _write_files(self, material: ServingMaterial) -> None:
        """Each file replaced atomically, and only when it changed. kopf re-reads the files every minute and restarts
        its server when they differ; a read between the key and the certificate (a window of microseconds, once a
        year) makes that restart fail and the operator exit, and the next start serves a matching pair."""
        for path, content, mode in (
            (self.files.key, material.serving.key_pem, 0o600),
            (self.files.cert, material.serving.cert_pem, 0o644),
            (self.files.ca, material.ca_bundle, 0o644),
        ):
            if path.exists() and path.read_bytes() == content:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.partial")
            partial.unlink(missing_ok=True)
            descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)  # the key is never readable
            with os.fdopen(descriptor, "wb") as file:
                file.write(content)
            partial.replace(path)
