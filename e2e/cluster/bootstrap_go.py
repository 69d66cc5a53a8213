"""Fetches the pinned Go toolchain from the Go module proxy when the machine has no suitable Go.

    python3 e2e/cluster/bootstrap_go.py      -> prints the toolchain's bin directory (cached under $C/toolchain/)

The Go project publishes every toolchain as the module golang.org/toolchain@v0.0.1-go<version>.<os>-<arch>; it is
what `GOTOOLCHAIN=go<version>` downloads. We fetch the same zip from the proxy and check it against the module hash
pinned in hack/versions.env (GO_TOOLCHAIN_H1_<arch>, copied from the checksum database), so nothing unverified runs.
Standard library only.
"""

from __future__ import annotations

import base64
import hashlib
import os
import platform
import shutil
import stat
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE = Path(
    os.environ.get("RIGHTSIZER_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rightsizer"
)
ARCHES = {"x86_64": "amd64", "aarch64": "arm64"}


def pins() -> dict[str, str]:
    lines = (REPO / "hack" / "versions.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def module_hash(zip_path: Path) -> str:
    """Go's "h1:" module hash (golang.org/x/mod/sumdb/dirhash.HashZip): SHA-256 over sorted "<sha256>  <name>" lines."""
    summary = hashlib.sha256()
    with zipfile.ZipFile(zip_path) as archive:
        for name in sorted(archive.namelist()):
            digest = hashlib.sha256(archive.read(name)).hexdigest()
            summary.update(f"{digest}  {name}\n".encode())
    return "h1:" + base64.b64encode(summary.digest()).decode()


def extract(zip_path: Path, prefix: str, target: Path) -> None:
    """Unpacks the module's files (dropping the module@version/ prefix), keeping their executable bits."""
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            if not info.filename.startswith(prefix) or info.is_dir():
                continue
            path = target / info.filename[len(prefix) :]
            path.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, path.open("wb") as sink:
                shutil.copyfileobj(source, sink)
            if (info.external_attr >> 16) & stat.S_IXUSR:
                path.chmod(0o755)


def main() -> int:
    versions = pins()
    go_version = versions["GO_VERSION"]
    arch = ARCHES.get(platform.machine())
    expected = versions.get(f"GO_TOOLCHAIN_H1_{(arch or '').upper()}")
    if arch is None or expected is None:
        sys.exit(f"no pinned Go toolchain for {platform.machine()}: install Go >= {go_version} yourself")
    root = CACHE / "toolchain" / f"go{go_version}"
    if not (root / "bin" / "go").exists():
        module = f"golang.org/toolchain@v0.0.1-go{go_version}.linux-{arch}"
        proxy = os.environ.get("GOPROXY", "https://proxy.golang.org").split(",")[0].split("|")[0]
        url = f"{proxy}/golang.org/toolchain/@v/v0.0.1-go{go_version}.linux-{arch}.zip"
        print(f"bootstrap-go: fetching {module} from {proxy}", file=sys.stderr)
        root.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root.parent) as scratch:
            zip_path = Path(scratch) / "toolchain.zip"
            with urllib.request.urlopen(url, timeout=300) as response, zip_path.open("wb") as sink:
                shutil.copyfileobj(response, sink)
            actual = module_hash(zip_path)
            if actual != expected:
                sys.exit(f"bootstrap-go: {module} hash {actual} != pinned {expected}; refusing to use it")
            extract(zip_path, f"{module}/", Path(scratch) / "go")
            (Path(scratch) / "go").rename(root)  # atomic: a half-extracted toolchain is never used
    print(root / "bin")
    return 0


if __name__ == "__main__":
    sys.exit(main())
