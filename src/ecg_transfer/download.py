"""Fetch dataset archives and unpack them safely.

Every dataset (real or demo) goes through :func:`fetch` and :func:`extract`, so the demo exercises
the same code path as the real study: ``http(s)://`` and ``file:`` URLs, checksum verification
before anything downstream can see the file, atomic placement under the final name, resumption of
interrupted HTTP downloads with ``Range`` requests, and retries with back-off.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

CHUNK = 1 << 20
HASHES = ("md5", "sha256")


class ChecksumError(RuntimeError):
    """The bytes we got are not the bytes the config promises."""


class DownloadError(RuntimeError):
    """The source could not be fetched after all retries."""


def file_digest(path: str | os.PathLike, algorithm: str) -> str:
    """Hex digest of a file, read in chunks so multi-GB archives do not fill memory."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def verify(path: str | os.PathLike, checksums: dict[str, str | None], source: str = "") -> None:
    """Raise ChecksumError unless every given checksum (md5 and/or sha256) matches."""
    for algorithm, expected in checksums.items():
        if expected is None:
            continue
        if algorithm not in HASHES:
            raise ValueError(f"unknown checksum algorithm {algorithm!r}; expected one of {HASHES}")
        actual = file_digest(path, algorithm)
        if actual.lower() != expected.lower():
            raise ChecksumError(
                f"{algorithm} of {source or path} is {actual}, but the config expects {expected}; "
                "the download is corrupt or the source changed (the file was not kept)"
            )


def local_path(url: str, base: str | os.PathLike = ".") -> Path | None:
    """The filesystem path of a ``file:`` URL, or None for remote URLs.

    ``file:relative/path`` (no slashes after the colon) is resolved against ``base`` so that a
    config can point at files inside the workflow directory, as the demo mirror does.
    """
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme != "file":
        return None
    path = urllib.request.url2pathname(parsed.path)
    if url.startswith("file:") and not url.startswith("file:/"):
        return Path(base) / url[len("file:") :]
    return Path(path)


def fetch(
    url: str,
    dest: str | os.PathLike,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    retries: int = 4,
    backoff: float = 2.0,
    timeout: float = 60.0,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Download ``url`` to ``dest``, verified, never leaving a partial file under ``dest``.

    Bytes are written to ``dest.part`` first; an interrupted HTTP download resumes from there on
    the next call (``Range`` request). Only after the checksums match is the file renamed to
    ``dest``; on a mismatch the partial file is deleted, so a rerun starts clean.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    src = local_path(url)
    if src is not None:
        if not src.is_file():
            raise DownloadError(f"{url}: no such file {src}")
        shutil.copyfile(src, part)
    elif urllib.parse.urlparse(url).scheme in ("http", "https"):
        _http_download(url, part, retries=retries, backoff=backoff, timeout=timeout,
                       progress=progress)
    else:
        raise ValueError(f"unsupported URL {url!r}: expected http://, https:// or file:")
    try:
        verify(part, {"md5": md5, "sha256": sha256}, source=url)
    except ChecksumError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return dest


def _http_download(
    url: str,
    part: Path,
    *,
    retries: int,
    backoff: float,
    timeout: float,
    progress: Callable[[int, int | None], None] | None,
) -> None:
    """Stream ``url`` into ``part``, resuming from its current size; retry transient failures."""
    last_error: Exception | None = None
    for attempt in range(retries + 1):
        have = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={"User-Agent": "ecg-transfer"})
        if have:
            request.add_header("Range", f"bytes={have}-")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                if have and response.status != 206:
                    have = 0  # the server ignored Range: start over
                length = response.headers.get("Content-Length")
                total = have + int(length) if length is not None else None
                with open(part, "ab" if have else "wb") as f:
                    done = have
                    last_report = 0.0
                    while chunk := response.read(CHUNK):
                        f.write(chunk)
                        done += len(chunk)
                        now = time.monotonic()
                        if progress is not None and now - last_report > 5:
                            progress(done, total)
                            last_report = now
                if total is not None and done < total:
                    raise DownloadError(f"{url}: connection closed at {done} of {total} bytes")
                if progress is not None:
                    progress(done, total)
                return
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # asked past the end: the file is already complete
                return
            if 400 <= e.code < 500 and e.code not in (408, 429):
                raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from e
            last_error = e
        except (urllib.error.URLError, TimeoutError, ConnectionError, DownloadError) as e:
            last_error = e
        if attempt < retries:
            wait = backoff * 2**attempt
            log.warning("download of %s failed (%s); retrying in %.0f s", url, last_error, wait)
            time.sleep(wait)
    raise DownloadError(f"{url}: failed after {retries + 1} attempts: {last_error}")


def extract(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Unpack a zip or tar(.gz) archive into ``dest`` (format detected from the bytes).

    Members with absolute paths, ``..`` components, or links pointing outside ``dest`` are
    rejected before anything is written. Extraction goes to a sibling temp folder that is renamed
    to ``dest`` at the end, so an interrupted extraction never looks complete.
    """
    archive, dest = Path(archive), Path(dest)
    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for name in zf.namelist():
                    _check_member(archive, name, tmp)
                zf.extractall(tmp)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                for member in tf.getmembers():
                    _check_member(archive, member.name, tmp)
                    if member.issym() or member.islnk():
                        target = Path(member.name).parent / member.linkname
                        _check_member(archive, str(target), tmp, what="link target")
                tf.extractall(tmp, filter="data")
        else:
            raise ValueError(f"{archive}: not a zip or tar archive (truncated or wrong file?)")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ValueError(f"{archive}: corrupt or truncated archive: {e}") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return dest


def _check_member(archive: Path, name: str, root: Path, what: str = "member") -> None:
    path = Path(name)
    if path.is_absolute() or ".." in path.parts:
        raise ValueError(f"{archive}: unsafe archive {what} {name!r} (absolute or '..')")
    resolved = (root / path).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise ValueError(f"{archive}: archive {what} {name!r} points outside the target folder")
