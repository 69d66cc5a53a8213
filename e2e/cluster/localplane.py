"""A real, local Kubernetes control plane with simulated GPU node pools, without Docker.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok (fake nodes whose pods become Running/Ready) and
the LeaderWorkerSet controller run as plain processes on 127.0.0.1, built from Go modules by e2e/cluster/build.

    localplane.py up [--pools FILE] [--restart COMPONENT] [--skip-build]
    localplane.py down
    localplane.py restart COMPONENT
    localplane.py status
    localplane.py nodes [--pools FILE] [--gpu-only]

`up` prints progress on stderr and the admin kubeconfig path as the last line of stdout, so
`export KUBECONFIG=$(e2e/cluster/up)` works. See docs/local-cluster.md.

Standard library and PyYAML only: this runs before the project's own dependencies matter.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# libyaml's loader parses LWS's large CRDs in milliseconds instead of a second each.
FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE = Path(
    os.environ.get("RIGHTSIZER_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rightsizer"
)
STATE = CACHE / "cluster"  # runtime state: removed by `down`
LOCK = CACHE / "cluster.lock"  # outside STATE so `down` can hold it while deleting STATE

CONTEXT = "rightsizer-local"
FIELD_MANAGER = "rightsizer-localplane"
POOL_LABEL = "rightsizer.dev/pool"
SIMULATED_LABEL = "rightsizer.dev/simulated"  # marks nodes this launcher owns, so stale ones can be pruned
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}

API_PORT = 6443
ETCD_PORT, ETCD_PEER_PORT = 2379, 2380
KCM_PORT, SCHEDULER_PORT = 10257, 10259
KWOK_PORT = 10247
LWS_WEBHOOK_PORT, LWS_HEALTH_PORT = 9443, 8081
RIGHTSIZER_WEBHOOK_PORT = 9444  # not ours to open: reserved for the operator's kopf webhook (cert made here)
SERVICE_CIDR, POD_CIDR = "10.96.0.0/16", "10.244.0.0/16"
# Fake nodes report 127.0.0.1 as their address: an accidental `kubectl logs` dials loopback (and is refused)
# instead of sending traffic to an address outside this machine.
NODE_IP = "127.0.0.1"


class PlaneError(RuntimeError):
    """A step failed; `component` names whose log tail to show."""

    def __init__(self, message: str, component: str | None = None):
        super().__init__(message)
        self.component = component


# --------------------------------------------------------------------------------------------------------- output


class Clock:
    """Progress lines with elapsed time, and per-step durations for the closing summary."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.steps: list[tuple[str, float]] = []

    def log(self, message: str) -> None:
        print(f"[plane {time.monotonic() - self.t0:6.1f}s] {message}", file=sys.stderr, flush=True)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        yield
        self.steps.append((name, time.monotonic() - start))

    def summary(self) -> None:
        self.log("timing summary:")
        for name, seconds in self.steps:
            print(f"    {name:<28} {seconds:6.1f}s", file=sys.stderr)
        print(f"    {'total':<28} {time.monotonic() - self.t0:6.1f}s", file=sys.stderr, flush=True)


CLOCK = Clock()
log = CLOCK.log


class NotReadyError(Exception):
    """Raised by a wait_until check for "retry", with the reason shown if the wait times out."""


def wait_until(check: Callable[[], Any], timeout: float, what: str, component: str | None = None) -> Any:
    """Polls `check` until it returns something truthy; raises PlaneError after `timeout` seconds.

    Connection errors, HTTP errors from urllib, bad JSON and NotReadyError mean "not yet"; a PlaneError ends the wait.
    """
    deadline = time.monotonic() + timeout
    delay = 0.05
    last_error: Exception | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except (OSError, ValueError, NotReadyError) as exc:  # not up yet: connection refused, 503, ...
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise PlaneError(f"timed out after {timeout:.0f}s waiting for {what}{detail}", component)
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


# ---------------------------------------------------------------------------------------------------------- paths


def read_versions() -> dict[str, str]:
    versions = {}
    for line in (REPO / "hack" / "versions.env").read_text().splitlines():
        if re.match(r"^[A-Z0-9_]+=", line):
            key, value = line.split("=", 1)
            versions[key] = value.strip()
    return versions


@dataclass(frozen=True)
class Paths:
    """Where every binary, manifest source and piece of runtime state lives."""

    versions: dict[str, str]
    state: Path = STATE

    def bin(self, component: str, name: str) -> Path:
        key = component.upper()  # k8s -> K8S_VERSION, argocd -> ARGOCD_VERSION (hack/versions.env)
        return CACHE / "bin" / f"{component}-v{self.versions[key + '_VERSION']}" / name

    def module(self, module: str, version_key: str) -> Path:
        return CACHE / "go" / "mod" / f"{module}@v{self.versions[version_key]}"

    @property
    def pki(self) -> Path:
        return self.state / "pki"

    @property
    def kubeconfig(self) -> Path:
        return self.state / "admin.kubeconfig"

    def log(self, component: str) -> Path:
        return self.state / "logs" / f"{component}.log"

    def pidfile(self, component: str) -> Path:
        return self.state / "run" / f"{component}.json"


# ------------------------------------------------------------------------------------------------------------ PKI


def openssl(command: str, *extra: str, cwd: Path) -> None:
    """Runs `openssl <command words> <extra args>`; `extra` carries arguments that may contain spaces."""
    args = ["openssl", *command.split(), *extra]
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PlaneError(f"{' '.join(args[:2])} failed: {result.stderr.strip()}")


def issue(pki: Path, name: str, subject: str, extensions: list[str]) -> None:
    """A key pair and a certificate signed by the plane's CA, with the given X.509v3 extensions."""
    (pki / f"{name}.ext").write_text("\n".join(["basicConstraints=CA:FALSE", *extensions]) + "\n")
    openssl(f"req -new -newkey rsa:2048 -nodes -keyout {name}.key -out {name}.csr", "-subj", subject, cwd=pki)
    serial = "0x" + secrets.token_hex(16)
    openssl(
        f"x509 -req -in {name}.csr -CA ca.crt -CAkey ca.key -set_serial {serial} -days 3650"
        f" -extfile {name}.ext -out {name}.crt",
        cwd=pki,
    )
    (pki / f"{name}.csr").unlink()
    (pki / f"{name}.ext").unlink()


SERVER = "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth"
CLIENT = "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth"
LOOPBACK_SANS = "subjectAltName=IP:127.0.0.1,DNS:localhost"
# 10.96.0.1 is the `kubernetes` Service's ClusterIP (first address of SERVICE_CIDR), for in-cluster clients.
APISERVER_SANS = (
    "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
    "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
)


def ensure_pki(paths: Paths) -> None:
    """CA, serving certs for every server, the admin client cert and the service-account key pair.

    Generated once per plane (kept while it runs, removed by `down`). Go verifies SANs, never the CN.
    """
    pki = paths.pki
    if (pki / "complete").exists():
        return
    shutil.rmtree(pki, ignore_errors=True)
    (pki / "lws").mkdir(parents=True)
    pki.chmod(0o700)
    openssl(
        "req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout ca.key -out ca.crt",
        *("-subj", "/CN=rightsizer-local-ca"),
        *("-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"),
        cwd=pki,
    )
    issue(pki, "apiserver", "/CN=kube-apiserver", [SERVER, APISERVER_SANS])
    issue(pki, "admin", "/O=system:masters/CN=rightsizer-admin", [CLIENT])
    issue(pki, "kube-controller-manager", "/CN=kube-controller-manager", [SERVER, LOOPBACK_SANS])
    issue(pki, "kube-scheduler", "/CN=kube-scheduler", [SERVER, LOOPBACK_SANS])
    issue(pki, "webhook", "/CN=rightsizer-webhook", [SERVER, LOOPBACK_SANS])  # rightsizer's kopf webhook (9444)
    issue(pki, "lws/tls", "/CN=lws-webhook", [SERVER, LOOPBACK_SANS])  # controller-runtime wants tls.{crt,key}
    openssl("genrsa -out sa.key 2048", cwd=pki)
    openssl("rsa -in sa.key -pubout -out sa.pub", cwd=pki)
    (pki / "complete").touch()


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_client_files(paths: Paths) -> None:
    """admin.kubeconfig (all data embedded, so it can be copied anywhere) and env.sh for interactive shells."""
    pki = paths.pki
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CONTEXT,
                "cluster": {
                    "server": f"https://127.0.0.1:{API_PORT}",
                    "certificate-authority-data": b64(pki / "ca.crt"),
                },
            }
        ],
        "users": [
            {
                "name": "rightsizer-admin",
                "user": {"client-certificate-data": b64(pki / "admin.crt"), "client-key-data": b64(pki / "admin.key")},
            }
        ],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": "rightsizer-admin"}}],
        "current-context": CONTEXT,
    }
    paths.kubeconfig.write_text(yaml.safe_dump(kubeconfig, sort_keys=False))
    paths.kubeconfig.chmod(0o600)
    (paths.state / "env.sh").write_text(
        "# source me: kubectl and helm for the local plane\n"
        f"export KUBECONFIG={paths.kubeconfig}\n"
        f'export PATH={paths.bin("k8s", "")}:{paths.bin("helm", "")}:"$PATH"\n'
    )


# ------------------------------------------------------------------------------------------------------ API client


class Api:
    """The few Kubernetes API calls the launcher needs, over TLS with the admin client certificate."""

    def __init__(self, paths: Paths):
        self.base = f"https://127.0.0.1:{API_PORT}"
        self.tls = ssl.create_default_context(cafile=str(paths.pki / "ca.crt"))
        self.tls.load_cert_chain(paths.pki / "admin.crt", paths.pki / "admin.key")

    def call(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json", timeout: float = 10
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={"Content-Type": content_type, "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, context=self.tls, timeout=timeout) as response:
                return response.status, parse_json(response.read())
        except urllib.error.HTTPError as error:
            return error.code, parse_json(error.read())

    def apply(self, path: str, obj: dict[str, Any], subresource: str = "") -> dict[str, Any]:
        """Server-side apply (create or update; fields this manager dropped are removed)."""
        url = f"{path}/{obj['metadata']['name']}{subresource}?fieldManager={FIELD_MANAGER}&force=true"
        status, reply = self.call("PATCH", url, obj, content_type="application/apply-patch+yaml")
        if status >= 300:
            raise PlaneError(f"apply {obj['kind']}/{obj['metadata']['name']}: HTTP {status}: {message_of(reply)}")
        return reply

    def get(self, path: str) -> Any:
        status, reply = self.call("GET", path)
        if status >= 300:
            raise PlaneError(f"GET {path}: HTTP {status}: {message_of(reply)}")
        return reply


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return {"message": raw.decode(errors="replace")}


def message_of(reply: Any) -> str:
    return reply.get("message", str(reply)) if isinstance(reply, dict) else str(reply)


def https_ok(port: int, path: str, paths: Paths) -> bool:
    """True when a TLS health endpoint on 127.0.0.1 (certificate signed by our CA) answers 200 "ok"."""
    tls = ssl.create_default_context(cafile=str(paths.pki / "ca.crt"))
    tls.load_cert_chain(paths.pki / "admin.crt", paths.pki / "admin.key")
    with urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", context=tls, timeout=3) as response:
        return response.status == 200 and response.read().strip() == b"ok"


def http_body(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as response:
        return response.read()


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# ------------------------------------------------------------------------------------------------------ processes


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks, or None when it is gone or a zombie (guards against PID reuse)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else fields[19]


@dataclass
class Component:
    """One process of the plane: how to start it and how to tell that it is healthy."""

    name: str
    argv: Callable[[Paths], list[str]]
    healthy: Callable[[Paths], bool]
    ports: tuple[int, ...]
    start_timeout: float = 60
    stop_timeout: float = 20

    def record(self, paths: Paths) -> dict[str, Any] | None:
        try:
            record: dict[str, Any] = json.loads(paths.pidfile(self.name).read_text())
        except (OSError, ValueError):
            return None
        return record

    def running_pid(self, paths: Paths) -> int | None:
        """The recorded PID if that very process (same start time) still runs."""
        record = self.record(paths)
        if record and record["start"] is not None and start_time(record["pid"]) == record["start"]:
            return int(record["pid"])
        return None

    def fingerprint(self, paths: Paths) -> str:
        """Changes when the binary or the flags change, so `up` restarts a component started with old ones."""
        argv = self.argv(paths)
        binary = Path(argv[0])
        digest = hashlib.sha256(json.dumps(argv).encode())
        digest.update(str(binary.stat().st_mtime_ns if binary.exists() else 0).encode())
        return digest.hexdigest()[:16]

    def start(self, paths: Paths) -> None:
        argv = self.argv(paths)
        if not Path(argv[0]).exists():
            raise PlaneError(f"{argv[0]} is missing: run e2e/cluster/build", self.name)
        for port in self.ports:
            if port_open(port):
                raise PlaneError(f"port 127.0.0.1:{port} is taken by another process (`ss -ltnp sport = :{port}`)")
        paths.log(self.name).parent.mkdir(parents=True, exist_ok=True)
        paths.pidfile(self.name).parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **child_env(paths)}
        with paths.log(self.name).open("ab") as logfile:
            # A new session: the plane outlives this launcher and ignores the terminal's Ctrl-C.
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                cwd=paths.state,
                env=env,
                start_new_session=True,
            )
        started = start_time(process.pid)
        record = {"pid": process.pid, "start": started, "fingerprint": self.fingerprint(paths), "argv": argv}
        paths.pidfile(self.name).write_text(json.dumps(record, indent=1))

    def wait_healthy(self, paths: Paths, timeout: float | None = None) -> None:
        def check() -> bool:
            if self.running_pid(paths) is None:
                raise PlaneError(f"{self.name} exited during start-up", self.name)
            return self.healthy(paths)

        wait_until(check, timeout or self.start_timeout, f"{self.name} to become healthy", self.name)

    def stop(self, paths: Paths) -> bool:
        """SIGTERM, then SIGKILL after `stop_timeout`; returns whether a process was stopped."""
        pid = self.running_pid(paths)
        if pid is not None:
            signal_and_wait(pid, self.name, self.stop_timeout)
        paths.pidfile(self.name).unlink(missing_ok=True)
        return pid is not None


def signal_and_wait(pid: int, name: str, timeout: float) -> None:
    started = start_time(pid)
    os.kill(pid, signal.SIGTERM)
    try:
        wait_until(lambda: start_time(pid) != started, timeout, f"{name} (pid {pid}) to exit")
    except PlaneError:
        log(f"{name} (pid {pid}) ignored SIGTERM for {timeout:.0f}s: SIGKILL")
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: start_time(pid) != started, 10, f"{name} (pid {pid}) to die")


def child_env(paths: Paths) -> dict[str, str]:
    """HOME and TMPDIR inside the state dir: whatever a component writes there is removed by `down`."""
    (paths.state / "home").mkdir(exist_ok=True)
    (paths.state / "tmp").mkdir(exist_ok=True)
    return {"HOME": str(paths.state / "home"), "TMPDIR": str(paths.state / "tmp"), "KUBECONFIG": str(paths.kubeconfig)}


# ------------------------------------------------------------------------------------------------------ components


def etcd_argv(p: Paths) -> list[str]:
    return [
        str(p.bin("etcd", "etcd")),
        "--name=rightsizer-local",
        f"--data-dir={p.state / 'etcd'}",
        f"--listen-client-urls=http://127.0.0.1:{ETCD_PORT}",
        f"--advertise-client-urls=http://127.0.0.1:{ETCD_PORT}",
        f"--listen-peer-urls=http://127.0.0.1:{ETCD_PEER_PORT}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{ETCD_PEER_PORT}",
        f"--initial-cluster=rightsizer-local=http://127.0.0.1:{ETCD_PEER_PORT}",
        # Throw-away data: no fsync (much faster on slow CI disks), compact hourly.
        "--unsafe-no-fsync",
        "--auto-compaction-retention=1",
        "--quota-backend-bytes=8589934592",
        "--log-level=warn",
    ]


def etcd_healthy(p: Paths) -> bool:
    return json.loads(http_body(ETCD_PORT, "/health")).get("health") == "true"


def apiserver_argv(p: Paths) -> list[str]:
    pki = p.pki
    return [
        str(p.bin("k8s", "kube-apiserver")),
        f"--etcd-servers=http://127.0.0.1:{ETCD_PORT}",
        "--bind-address=127.0.0.1",
        f"--secure-port={API_PORT}",
        "--advertise-address=127.0.0.1",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        # Real authorization, so the operator's RBAC is exercised whenever it runs as a ServiceAccount.
        "--authorization-mode=Node,RBAC",
        "--allow-privileged=true",
        # No loopback `kubernetes` Endpoints object (it would point at 127.0.0.1, which validation rejects).
        "--endpoint-reconciler-type=none",
    ]


def controller_manager_argv(p: Paths) -> list[str]:
    pki = p.pki
    return [
        str(p.bin("k8s", "kube-controller-manager")),
        f"--kubeconfig={p.kubeconfig}",
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        f"--secure-port={KCM_PORT}",
        f"--tls-cert-file={pki / 'kube-controller-manager.crt'}",
        f"--tls-private-key-file={pki / 'kube-controller-manager.key'}",
        "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
        f"--root-ca-file={pki / 'ca.crt'}",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
    ]


def scheduler_argv(p: Paths) -> list[str]:
    pki = p.pki
    return [
        str(p.bin("k8s", "kube-scheduler")),
        f"--kubeconfig={p.kubeconfig}",
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        f"--secure-port={SCHEDULER_PORT}",
        f"--tls-cert-file={pki / 'kube-scheduler.crt'}",
        f"--tls-private-key-file={pki / 'kube-scheduler.key'}",
        "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
    ]


def kwok_argv(p: Paths) -> list[str]:
    return [
        str(p.bin("kwok", "kwok")),
        f"--kubeconfig={p.kubeconfig}",
        f"--config={p.state / 'kwok-stages.yaml'}",
        # Only nodes this launcher creates (annotated) are simulated; a real node joining would be left alone.
        "--manage-all-nodes=false",
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        f"--cidr={POD_CIDR}",
        f"--node-ip={NODE_IP}",
        "--node-lease-duration-seconds=40",
        f"--server-address=127.0.0.1:{KWOK_PORT}",
    ]


def lws_argv(p: Paths) -> list[str]:
    return [str(p.bin("lws", "lws-manager")), f"--config={p.state / 'lws-config.yaml'}", f"--kubeconfig={p.kubeconfig}"]


def lws_healthy(p: Paths) -> bool:
    return http_body(LWS_HEALTH_PORT, "/readyz").strip() == b"ok" and port_open(LWS_WEBHOOK_PORT)


COMPONENTS = [
    Component("etcd", etcd_argv, etcd_healthy, (ETCD_PORT, ETCD_PEER_PORT), start_timeout=30),
    # The API server drains open watches for up to a minute after SIGTERM; nothing here needs that grace.
    Component("kube-apiserver", apiserver_argv, lambda p: https_ok(API_PORT, "/readyz", p), (API_PORT,), 120, 5),
    Component(
        "kube-controller-manager", controller_manager_argv, lambda p: https_ok(KCM_PORT, "/healthz", p), (KCM_PORT,)
    ),
    Component("kube-scheduler", scheduler_argv, lambda p: https_ok(SCHEDULER_PORT, "/healthz", p), (SCHEDULER_PORT,)),
    Component("kwok", kwok_argv, lambda p: http_body(KWOK_PORT, "/healthz").strip() == b"ok", (KWOK_PORT,)),
    Component("lws-manager", lws_argv, lws_healthy, (LWS_WEBHOOK_PORT, LWS_HEALTH_PORT)),
]
BY_NAME = {c.name: c for c in COMPONENTS}


# ------------------------------------------------------------------------------------------------- kwok and LWS


def kustomize_resources(directory: Path) -> list[Path]:
    """The files a kustomization.yaml lists under `resources` (all plain files in the directories we read)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    return [directory / name for name in kustomization["resources"]]


def write_kwok_stages(paths: Paths) -> None:
    """kwok v0.8 standalone needs explicit Stage objects: take upstream's "fast" set from the module cache."""
    stages = paths.module("sigs.k8s.io/kwok", "KWOK_VERSION") / "kustomize" / "stage"
    if not stages.is_dir():
        raise PlaneError(f"{stages} is missing: run e2e/cluster/build kwok", "kwok")
    files = []
    for sub in ("node/fast", "node/heartbeat-with-lease", "pod/fast"):
        files += kustomize_resources(stages / sub)
    (paths.state / "kwok-stages.yaml").write_text("\n---\n".join(f.read_text() for f in files))


def write_lws_config(paths: Paths) -> None:
    """LWS without cert-manager or its internal cert rotation: it serves our CA-signed cert on 127.0.0.1:9443."""
    config = {
        "apiVersion": "config.lws.x-k8s.io/v1alpha1",
        "kind": "Configuration",
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "webhook": {"host": "127.0.0.1", "port": LWS_WEBHOOK_PORT, "certDir": str(paths.pki / "lws")},
        "metrics": {"bindAddress": "0"},  # off: one port and one self-signed cert fewer
        "health": {"healthProbeBindAddress": f"127.0.0.1:{LWS_HEALTH_PORT}"},
    }
    (paths.state / "lws-config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def lws_dir(paths: Paths) -> Path:
    directory = paths.module("sigs.k8s.io/lws", "LWS_VERSION") / "config"
    if not directory.is_dir():
        raise PlaneError(f"{directory} is missing: run e2e/cluster/build lws", "lws-manager")
    return directory


def apply_lws_crds(api: Api, paths: Paths) -> None:
    """LWS's CRDs (served at v1 only, so no conversion webhook), then wait until they are Established."""
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    for file in kustomize_resources(lws_dir(paths) / "crd"):
        crd = yaml.load(file.read_text(), Loader=FAST_LOADER)
        api.apply(path, crd)
        name = crd["metadata"]["name"]
        wait_until(lambda n=name: has_condition(api.get(f"{path}/{n}"), "Established"), 30, f"CRD {name} Established")


def has_condition(obj: dict[str, Any], kind: str) -> bool:
    return any(c["type"] == kind and c["status"] == "True" for c in (obj.get("status") or {}).get("conditions") or [])


def json_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """The RFC 6902 subset (add, replace, remove) that LWS's kustomize patches use."""
    for op in ops:
        *parents, last = [part.replace("~1", "/").replace("~0", "~") for part in op["path"].split("/")[1:]]
        target = doc
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        key: Any = int(last) if isinstance(target, list) and last != "-" else last
        if op["op"] == "replace":
            target[key] = op["value"]
        elif op["op"] == "add" and isinstance(target, list):
            target.insert(len(target) if key == "-" else key, op["value"])
        elif op["op"] == "add":
            target[key] = op["value"]
        elif op["op"] == "remove":
            del target[key]
        else:
            raise PlaneError(f"unsupported JSON patch op {op['op']!r} in LWS manifests")
    return doc


def lws_webhook_configs(paths: Paths) -> list[dict[str, Any]]:
    """LWS's webhook configurations as its kustomization renders them, pointed at 127.0.0.1:9443.

    The patches add `objectSelector: leaderworkerset.sigs.k8s.io/name Exists` to the pod webhooks; without it a
    failurePolicy=Fail webhook would intercept every pod in the cluster. The service reference becomes a URL plus
    our CA bundle (no Service or cert-manager here).
    """
    webhook_dir = lws_dir(paths) / "webhook"
    kustomization = yaml.safe_load((webhook_dir / "kustomization.yaml").read_text())
    docs = [d for d in yaml.safe_load_all((webhook_dir / "manifests.yaml").read_text()) if d]
    for patch in kustomization.get("patches", []):
        target = patch["target"]
        ops = yaml.safe_load((webhook_dir / patch["path"]).read_text())
        for doc in docs:
            if doc["kind"] == target["kind"] and doc["metadata"]["name"] == target["name"]:
                json_patch(doc, ops)
    ca_bundle = b64(paths.pki / "ca.crt")
    for doc in docs:
        doc["metadata"]["name"] = "lws-" + doc["metadata"]["name"]
        for hook in doc["webhooks"]:
            service = hook["clientConfig"].pop("service")
            hook["clientConfig"] = {
                "url": f"https://127.0.0.1:{LWS_WEBHOOK_PORT}{service['path']}",
                "caBundle": ca_bundle,
            }
    return docs


def apply_lws_webhooks(api: Api, paths: Paths) -> None:
    for doc in lws_webhook_configs(paths):
        plural = doc["kind"].lower() + "s"
        api.apply(f"/apis/admissionregistration.k8s.io/v1/{plural}", doc)
    # A server-side dry-run create goes through both LWS webhooks: proof that the TLS plumbing works.
    probe = {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": "webhook-probe", "namespace": "default"},
        "spec": {
            "leaderWorkerTemplate": {
                "size": 1,
                "workerTemplate": {"spec": {"containers": [{"name": "c", "image": "registry.invalid/probe"}]}},
            }
        },
    }

    def admitted() -> bool:
        status, reply = api.call(
            "POST", "/apis/leaderworkerset.x-k8s.io/v1/namespaces/default/leaderworkersets?dryRun=All", probe
        )
        if status >= 300:  # typically "connection refused" for a moment after the manager reports ready
            raise NotReadyError(f"dry-run LeaderWorkerSet: HTTP {status}: {message_of(reply)}")
        return True

    wait_until(admitted, 30, "the LWS webhooks to admit a dry-run LeaderWorkerSet", "lws-manager")


# ---------------------------------------------------------------------------------------------------------- pools

POOL_KEYS = {"name", "nodes", "gpu", "cpu", "memory", "pods", "labels", "taints"}
GPU_KEYS = {"product", "memoryMiB", "count", "family"}


def load_pools(file: Path) -> list[dict[str, Any]]:
    """Reads and validates the pools file (format in docs/local-cluster.md)."""
    data = yaml.safe_load(file.read_text()) or {}
    pools = data.get("pools")
    if not isinstance(pools, list) or not pools:
        raise PlaneError(f"{file}: expected a non-empty `pools:` list")
    names = set()
    for pool in pools:
        where = f"{file}: pool {pool.get('name', '?')!r}"
        if unknown := set(pool) - POOL_KEYS:
            raise PlaneError(f"{where}: unknown keys {sorted(unknown)} (allowed: {sorted(POOL_KEYS)})")
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", str(pool.get("name", ""))):
            raise PlaneError(f"{where}: `name` must be a lowercase DNS label")
        if pool["name"] in names:
            raise PlaneError(f"{where}: duplicate pool name")
        names.add(pool["name"])
        if not isinstance(pool.get("nodes"), int) or pool["nodes"] < 0:
            raise PlaneError(f"{where}: `nodes` must be a non-negative integer")
        gpu = pool.get("gpu")
        if gpu is not None and (set(gpu) != GPU_KEYS or not isinstance(gpu["count"], int)):
            raise PlaneError(f"{where}: `gpu` needs exactly {sorted(GPU_KEYS)} (count: GPUs per node)")
    return pools


def node_manifests(pools: list[dict[str, Any]], kwok_version: str) -> list[dict[str, Any]]:
    return [node_manifest(pool, i, kwok_version) for pool in pools for i in range(pool["nodes"])]


def node_manifest(pool: dict[str, Any], index: int, kwok_version: str) -> dict[str, Any]:
    """A kwok-managed Node carrying the labels NVIDIA GPU Feature Discovery sets on a real GPU node."""
    name = f"{pool['name']}-{index}"
    labels = {
        "type": "kwok",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        POOL_LABEL: pool["name"],
        SIMULATED_LABEL: "true",
    }
    capacity = {
        "cpu": str(pool.get("cpu", "192")),
        "memory": str(pool.get("memory", "2Ti")),
        "pods": str(pool.get("pods", "110")),
        "ephemeral-storage": "10Ti",
    }
    taints: list[dict[str, str]] = []
    if gpu := pool.get("gpu"):
        labels |= {
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.product": gpu["product"],
            "nvidia.com/gpu.memory": str(gpu["memoryMiB"]),
            "nvidia.com/gpu.count": str(gpu["count"]),
            "nvidia.com/gpu.family": gpu["family"],
        }
        capacity["nvidia.com/gpu"] = str(gpu["count"])
        taints = [GPU_TAINT]  # what managed GPU pools do; a pool's own `taints` replace it
    labels |= {k: str(v) for k, v in (pool.get("labels") or {}).items()}
    taints = pool.get("taints", taints) or []
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"taints": taints},
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": f"kwok-v{kwok_version}",
                "kubeProxyVersion": "fake",
            },
        },
    }


def apply_pools(api: Api, paths: Paths, pools_file: Path) -> int:
    """Makes the simulated nodes match the pools file: apply each node (status too), delete nodes no longer listed."""
    nodes = node_manifests(load_pools(pools_file), paths.versions["KWOK_VERSION"])
    for node in nodes:
        api.apply("/api/v1/nodes", node)
        api.apply("/api/v1/nodes", node, subresource="/status")  # capacity lives in status
    wanted = {n["metadata"]["name"] for n in nodes}
    existing = api.get(f"/api/v1/nodes?labelSelector={SIMULATED_LABEL}%3Dtrue")["items"]
    for stale in {n["metadata"]["name"] for n in existing} - wanted:
        log(f"deleting node {stale}: no longer in {pools_file.name}")
        api.call("DELETE", f"/api/v1/nodes/{stale}")

    def all_ready() -> bool:
        items = api.get(f"/api/v1/nodes?labelSelector={SIMULATED_LABEL}%3Dtrue")["items"]
        ready = {n["metadata"]["name"] for n in items if has_condition(n, "Ready")}
        return wanted <= ready

    wait_until(all_ready, 60, f"{len(wanted)} simulated nodes to be Ready", "kwok")
    return len(wanted)


# ------------------------------------------------------------------------------------------------------ lifecycle


@contextlib.contextmanager
def plane_lock(timeout: float = 600) -> Iterator[None]:
    """One launcher at a time per cache (parallel test sessions share one plane)."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with LOCK.open("w") as handle:
        wait_until(lambda: try_lock(handle), timeout, "another e2e/cluster/up or down to finish")
        yield


def try_lock(handle: Any) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def run_build() -> None:
    """e2e/cluster/build: seconds when everything is cached, 20+ minutes cold."""
    result = subprocess.run([str(HERE / "build")], check=False)  # its progress goes straight to our stderr
    if result.returncode != 0:
        raise PlaneError("e2e/cluster/build failed (see its output above)")


def ensure_component(component: Component, paths: Paths, api: Api | None) -> str:
    """Starts the component unless the very same one already runs healthy; returns what it did."""
    pid = component.running_pid(paths)
    if pid is not None:
        record = component.record(paths) or {}
        if record.get("fingerprint") != component.fingerprint(paths):
            log(f"{component.name}: pid {pid} runs an older binary or flags, restarting")
        elif settles(component, paths):
            return "running"
        else:
            log(f"{component.name}: pid {pid} stays unhealthy, restarting")
        component.stop(paths)
    before_start(component, api, paths)
    component.start(paths)
    component.wait_healthy(paths)
    return "started"


def settles(component: Component, paths: Paths, grace: float = 15) -> bool:
    """Whether a running component is healthy now or within `grace` seconds (e.g. the API server reconnecting to a
    restarted etcd), rather than restarting it at the first failed probe."""
    try:
        component.wait_healthy(paths, timeout=grace)
    except PlaneError:
        return False
    return True


def quick_health(component: Component, paths: Paths) -> bool:
    try:
        return bool(component.healthy(paths))
    except (OSError, ValueError):
        return False


def before_start(component: Component, api: Api | None, paths: Paths) -> None:
    """Files and API objects a component needs before its process starts."""
    if component.name == "kwok":
        write_kwok_stages(paths)
    elif component.name == "lws-manager":
        write_lws_config(paths)
        assert api is not None
        apply_lws_crds(api, paths)  # the controller refuses to start without its CRDs


def bring_up(paths: Paths, pools_file: Path) -> None:
    paths.state.mkdir(parents=True, exist_ok=True)
    with CLOCK.step("certificates, kubeconfig"):
        ensure_pki(paths)
        write_client_files(paths)
    api = None
    for component in COMPONENTS:
        with CLOCK.step(component.name):
            what = ensure_component(component, paths, api)
            log(f"{component.name}: {what}")
        if component.name == "kube-apiserver":
            api = Api(paths)
    assert api is not None
    with CLOCK.step("LWS webhooks"):
        apply_lws_webhooks(api, paths)
    with CLOCK.step("node pools"):
        count = apply_pools(api, paths, pools_file)
        log(f"{count} simulated nodes Ready ({pools_file})")


def restart(paths: Paths, name: str) -> None:
    """Stops and starts one component, e.g. to prove clients converge after an API server restart."""
    component = BY_NAME.get(name)
    if component is None:
        raise PlaneError(f"unknown component {name!r} (one of {', '.join(BY_NAME)})")
    if not (paths.pki / "complete").exists():
        raise PlaneError("the plane is not up: run e2e/cluster/up first")
    with CLOCK.step(f"restart {name}"):
        component.stop(paths)
        log(f"{name}: stopped")
        ensure_component(component, paths, Api(paths))
        log(f"{name}: healthy again")


def tear_down(paths: Paths) -> None:
    """Stops every recorded process (reverse start order), then deletes the runtime state; the build cache stays."""
    for component in reversed(COMPONENTS):
        if component.stop(paths):
            log(f"{component.name}: stopped")
    leftovers = [port for c in COMPONENTS for port in c.ports if port_open(port)]
    shutil.rmtree(paths.state, ignore_errors=True)
    if leftovers:
        raise PlaneError(f"ports still open after down: {leftovers} (a process not started by this launcher?)")
    log(f"removed {paths.state}")


def show_status(paths: Paths) -> bool:
    """One line per component (pid, health, resident memory); true when all are healthy."""
    total_kib, all_ok = 0, True
    for component in COMPONENTS:
        pid = component.running_pid(paths)
        healthy = pid is not None and quick_health(component, paths)
        rss = rss_kib(pid) if pid else 0
        total_kib += rss
        all_ok &= healthy
        state = "healthy" if healthy else ("UNHEALTHY" if pid else "stopped")
        print(f"{component.name:<24} pid {pid or '-':>7}  {state:<9}  RSS {rss / 1024:7.1f} MiB")
    print(f"{'total':<24} {'':>11}  {'':<9}  RSS {total_kib / 1024:7.1f} MiB")
    return all_ok


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def log_tail(paths: Paths, component: str, lines: int = 40) -> None:
    logfile = paths.log(component)
    if logfile.exists():
        tail = logfile.read_text(errors="replace").splitlines()[-lines:]
        print(f"----- last {len(tail)} lines of {logfile} -----", file=sys.stderr)
        print("\n".join(tail), file=sys.stderr)
        print("-----", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------------------ CLI


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="e2e/cluster/up", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="build if needed, start (or reuse) the plane, apply the node pools")
    up.add_argument("--pools", type=Path, default=HERE / "pools.yaml", help="node pools file (default: %(default)s)")
    up.add_argument("--restart", metavar="COMPONENT", help="restart one running component instead (see `restart`)")
    up.add_argument("--skip-build", action="store_true", help="do not run e2e/cluster/build first")
    sub.add_parser("down", help="stop every process and delete the runtime state (keeps the build cache)")
    restart_parser = sub.add_parser("restart", help="stop and start one component: " + ", ".join(BY_NAME))
    restart_parser.add_argument("component", choices=list(BY_NAME))
    sub.add_parser("status", help="show each component's pid, health and memory; exit 1 unless all are healthy")
    nodes = sub.add_parser("nodes", help="print the simulated Node manifests as YAML (for kind: e2e/kind/up)")
    nodes.add_argument("--pools", type=Path, default=HERE / "pools.yaml", help="node pools file (default: %(default)s)")
    nodes.add_argument("--gpu-only", action="store_true", help="leave out pools without GPUs")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    paths = Paths(read_versions())
    try:
        if args.command == "status":
            return 0 if show_status(paths) else 1
        if args.command == "nodes":
            pools = [p for p in load_pools(args.pools) if p.get("gpu") or not args.gpu_only]
            print(yaml.safe_dump_all(node_manifests(pools, paths.versions["KWOK_VERSION"]), sort_keys=False), end="")
            return 0
        with plane_lock():
            if args.command == "down":
                tear_down(paths)
                return 0
            if args.command == "restart" or args.restart:
                restart(paths, args.component if args.command == "restart" else args.restart)
            else:
                if not args.skip_build:
                    with CLOCK.step("build (e2e/cluster/build)"):
                        run_build()
                bring_up(paths, args.pools.resolve())
    except PlaneError as error:
        log(f"FAILED: {error}")
        if error.component:
            log_tail(paths, error.component)
        return 1
    CLOCK.summary()
    print(paths.kubeconfig)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
