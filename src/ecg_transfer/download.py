"""Fetch dataset archives and unpack them safely.

Every dataset (real or demo) goes through :func:`fetch` and :func:`extract`, so the demo exercises
the same code path as the real study: ``http(s)://`` and ``file:`` URLs, checksum verification
before anything downstream can see the file, atomic placement under the final name, resumption of
interrupted HTTP downloads with ``Range`` requests, and retries with back-off.

Where a source publishes no checksum, the SHA-256 of the first download is recorded in a lock file
(:data:`LOCK_FILE`, beside the config) and every later download is verified against it, so a
source that silently changes, or a corrupted transfer, cannot slip into the study unnoticed.
"""

from __future__ import annotations

import datetime
import fcntl
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from ecg_transfer.fileio import atomic_path

log = logging.getLogger(__name__)

CHUNK = 1 << 20
HASHES = ("md5", "sha256")

# (bytes so far, total bytes or None when the server does not say, True when an attempt starts)
Progress = Callable[[int, int | None, bool], None]
LOCK_FILE = "checksums.lock.yaml"
LOCK_FIELDS = ("url", "sha256", "bytes", "recorded")


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
    progress: Progress | None = None,
    progress_every: float = 10.0,
    lock: str | os.PathLike | None = None,
    dataset: str | None = None,
) -> Path:
    """Download ``url`` to ``dest``, verified, never leaving a partial file under ``dest``.

    Bytes are written to ``dest.part`` first; an interrupted HTTP download resumes from there on
    the next call (``Range`` request). Only after the checksums match is the file renamed to
    ``dest``; on a mismatch the partial file is deleted, so a rerun starts clean.

    With neither ``md5`` nor ``sha256`` but a ``lock`` file, a remote download is checked against
    the SHA-256 recorded there for ``dataset`` (see :func:`check_or_record`). ``file:`` URLs are
    not pinned: a local file is under the user's control, and the demo mirror is rebuilt by the
    workflow whenever its settings change.

    ``progress`` is called with (bytes so far, total or None, whether an attempt starts) when
    each HTTP attempt starts, every ``progress_every`` seconds, and at the end;
    :class:`ProgressLog` turns that into log lines.
    """
    if lock is not None and dataset is None:
        raise ValueError("fetch(lock=...) needs the dataset name the lock entry is kept under")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    src = local_path(url)
    if src is not None:
        if not src.is_file():
            raise DownloadError(f"{url}: no such file {src}")
        part.unlink(missing_ok=True)
        link_or_copy(src, part)  # a local file: no second copy where the file system allows
    elif urllib.parse.urlparse(url).scheme in ("http", "https"):
        _http_download(url, part, retries=retries, backoff=backoff, timeout=timeout,
                       progress=progress, progress_every=progress_every)
    else:
        raise ValueError(f"unsupported URL {url!r}: expected http://, https:// or file:")
    try:
        if md5 is None and sha256 is None and lock is not None and src is None:
            check_or_record(lock, str(dataset), url, part)
        elif md5 is None and sha256 is None:
            log.warning("%s: no checksum in the config and no lock file: not verified", url)
        else:
            verify(part, {"md5": md5, "sha256": sha256}, source=url)
            log.info("%s: %s verified", url, " and ".join(
                name for name, value in (("md5", md5), ("sha256", sha256)) if value))
    except ChecksumError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return dest


def link_or_copy(source: str | os.PathLike, target: str | os.PathLike) -> str:
    """Make ``target`` (which must not exist) a hard link to ``source``, so that the disk holds
    one copy, or a copy where the file system cannot link; returns "link" or "copy"."""
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
        return "link"
    except OSError:
        shutil.copyfile(source, target)
        return "copy"


def _http_download(
    url: str,
    part: Path,
    *,
    retries: int,
    backoff: float,
    timeout: float,
    progress: Progress | None,
    progress_every: float = 10.0,
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
                    if progress is not None:
                        progress(done, total, True)
                    last_report = time.monotonic()
                    while chunk := response.read(CHUNK):
                        f.write(chunk)
                        done += len(chunk)
                        now = time.monotonic()
                        if progress is not None and now - last_report >= progress_every:
                            progress(done, total, False)
                            last_report = now
                if total is not None and done < total:
                    raise DownloadError(f"{url}: connection closed at {done} of {total} bytes")
                if progress is not None:
                    progress(done, total, False)
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


class ProgressLog:
    """A ``progress`` callback for :func:`fetch` that logs bytes, percentage, rate and ETA.

    The rate is measured between consecutive reports of one attempt, so a resumed download does
    not count the bytes it already had.
    """

    def __init__(self, url: str, logger: logging.Logger = log,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url, self.logger, self.clock = url, logger, clock
        self._last: tuple[int, float] | None = None

    def __call__(self, done: int, total: int | None, starting: bool = False) -> None:
        now = self.clock()
        rate = None
        if not starting and self._last is not None and now > self._last[1]:
            rate = max(done - self._last[0], 0) / (now - self._last[1])
        self._last = (done, now)
        self.logger.info("%s", self.format(done, total, rate, starting))

    def format(self, done: int, total: int | None, rate: float | None, starting: bool) -> str:
        parts = [f"{self.url}: {done / 1e6:.1f}"]
        if total:
            parts.append(f" of {total / 1e6:.1f} MB ({100 * done / total:.1f}%)")
        else:
            parts.append(" MB (size unknown)")
        if starting:
            parts.append(", resuming" if done else ", starting")
        elif rate is not None:
            parts.append(f", {rate / 1e6:.2f} MB/s")
            if total and rate > 0 and done < total:
                eta = (total - done) / rate
                parts.append(f", {eta:.0f} s left" if eta < 120 else f", {eta / 60:.1f} min left")
        return "".join(parts)


@contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    """Hold an exclusive POSIX lock on a sidecar of ``lock`` (not on ``lock`` itself, which is
    replaced by a rename on every write, so a lock on its inode would protect nothing)."""
    sidecar = lock.with_name(f".{lock.name}.flock")
    sidecar.parent.mkdir(parents=True, exist_ok=True)
    with open(sidecar, "a") as f:
        fcntl.lockf(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(f, fcntl.LOCK_UN)


def read_lock(lock: str | os.PathLike) -> dict[str, dict]:
    """The entries of a checksum lock file (empty if there is none yet), validated."""
    lock = Path(lock)
    if not lock.exists():
        return {}
    try:
        entries = yaml.safe_load(lock.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{lock}: not valid YAML ({e}); fix or delete the file") from e
    if not isinstance(entries, dict):
        raise ValueError(f"{lock}: expected a mapping of dataset name to entry, "
                         f"got {type(entries).__name__}")
    for name, entry in entries.items():
        missing = [k for k in LOCK_FIELDS if not isinstance(entry, dict) or k not in entry]
        if missing:
            raise ValueError(f"{lock}: entry '{name}' lacks field(s) {missing}; expected "
                             f"{list(LOCK_FIELDS)}")
    return entries


def check_or_record(lock: str | os.PathLike, dataset: str, url: str,
                    path: str | os.PathLike) -> str:
    """Verify ``path`` against the SHA-256 recorded for (``dataset``, ``url``), or record it.

    Used where the source publishes no checksum: the first download is trusted and pinned, later
    ones must match. An entry for another URL (the config now points elsewhere) is replaced,
    as the old hash says nothing about the new file. Concurrent downloads of different datasets
    update the same file, so the read-compare-write runs under an exclusive lock and the file is
    rewritten atomically. Returns the file's SHA-256.
    """
    lock = Path(lock)
    actual = file_digest(path, "sha256")
    with _exclusive(lock):
        entries = read_lock(lock)
        entry = entries.get(dataset)
        if entry is not None and entry["url"] == url:
            if str(entry["sha256"]).lower() != actual:
                raise ChecksumError(
                    f"sha256 of {url} is {actual}, but {lock} recorded {entry['sha256']} for "
                    f"'{dataset}' at its first download ({entry['recorded']}); the source "
                    "changed or the download is corrupt (the file was not kept). If the new "
                    f"file is right, delete the '{dataset}' entry from {lock} and rerun"
                )
            return actual
        if entry is not None:
            log.warning("%s: url of '%s' changed from %s to %s; recording a new checksum",
                        lock, dataset, entry["url"], url)
        entries[dataset] = {
            "url": url,
            "sha256": actual,
            "bytes": os.path.getsize(path),
            "recorded": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
        with atomic_path(lock) as tmp:
            tmp.chmod(0o644)  # mkstemp makes it owner-only; the lock is meant to be shared
            tmp.write_text(
                "# SHA-256 of the first download of each dataset whose source publishes no\n"
                "# checksum; later downloads must match. Written by ecg_transfer.download.\n"
                + yaml.safe_dump(entries, sort_keys=True)
            )
        log.info("%s: recorded sha256 %s of %s for '%s'", lock, actual, url, dataset)
    return actual


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
