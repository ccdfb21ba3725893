"""Fetch dataset archives and unpack them safely.

Every dataset (real or demo) goes through :func:`fetch` and :func:`extract`, so the demo exercises
the same code path as the real study: ``http(s)://`` and ``file:`` URLs, checksum verification
before anything downstream can see the file, atomic placement under the final name, resumption of
interrupted HTTP downloads with ``Range`` requests (spliced only onto the same version of the
file), and retries with back-off.

Where a source publishes no checksum, the SHA-256 of the first download is recorded in a lock file
(:data:`LOCK_FILE`, beside the config) and every later download is verified against it, so a
source that silently changes, or a corrupted transfer, cannot slip into the study unnoticed. The
first download is recorded only once :func:`extract` has unpacked it: a web page served instead
of the archive, or a transfer cut short, must fail there rather than become the reference.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import hashlib
import http.client
import json
import logging
import lzma
import os
import re
import shutil
import ssl
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import Message
from pathlib import Path
from typing import BinaryIO

import yaml

from ecg_transfer.fileio import atomic_path

log = logging.getLogger(__name__)

CHUNK = 1 << 20
HASHES = ("md5", "sha256")

# (bytes so far, total bytes or None when the server does not say, True when an attempt starts)
Progress = Callable[[int, int | None, bool], None]
LOCK_FILE = "checksums.lock.yaml"
LOCK_FIELDS = ("url", "sha256", "bytes", "recorded")
# beside a downloaded archive whose SHA-256 extract() is to record in the lock file
PENDING_PIN_SUFFIX = ".pin-pending.json"


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
    ``dest``; on a mismatch the partial file is deleted, so a rerun starts clean. A server that
    answers with a web page (``text/html``) is refused outright, keeping nothing.

    With neither ``md5`` nor ``sha256`` but a ``lock`` file, a remote download is checked against
    the SHA-256 recorded there for ``dataset`` (see :func:`check_or_record`). Where nothing is
    recorded yet, nothing is recorded here either: the first download has not been checked by
    anything, so ``fetch`` leaves a note beside ``dest`` (:data:`PENDING_PIN_SUFFIX`) and
    :func:`extract` records the SHA-256 once the archive has unpacked. ``file:`` URLs are not
    pinned: a local file is under the user's control, and the demo mirror is rebuilt by the
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
    pending = _pending_pin_file(dest)
    pending.unlink(missing_ok=True)  # a note about an earlier download says nothing about this one
    src = local_path(url)
    if src is not None:
        if not src.is_file():
            raise DownloadError(f"{url}: no such file {src}")
        _discard(part)
        link_or_copy(src, part)  # a local file: no second copy where the file system allows
    elif urllib.parse.urlparse(url).scheme in ("http", "https"):
        _http_download(url, part, retries=retries, backoff=backoff, timeout=timeout,
                       progress=progress, progress_every=progress_every)
    else:
        raise ValueError(f"unsupported URL {url!r}: expected http://, https:// or file:")
    try:
        if md5 is None and sha256 is None and lock is not None and src is None:
            if _is_pinned(lock, str(dataset), url):
                check_or_record(lock, str(dataset), url, part)
            else:
                _write_pending_pin(pending, lock, str(dataset), url)
                log.info("%s: no checksum recorded for '%s' yet; it is recorded in %s once the "
                         "archive has been extracted", url, dataset, lock)
        elif md5 is None and sha256 is None:
            log.warning("%s: no checksum in the config and no lock file: not verified", url)
        else:
            verify(part, {"md5": md5, "sha256": sha256}, source=url)
            log.info("%s: %s verified", url, " and ".join(
                name for name, value in (("md5", md5), ("sha256", sha256)) if value))
    except ChecksumError:
        _discard(part)
        raise
    os.replace(part, dest)
    _resume_file(part).unlink(missing_ok=True)
    return dest


def _is_pinned(lock: str | os.PathLike, dataset: str, url: str) -> bool:
    entry = read_lock(lock).get(dataset)
    return entry is not None and entry["url"] == url


def _write_pending_pin(note: Path, lock: str | os.PathLike, dataset: str, url: str) -> None:
    with atomic_path(note) as tmp:
        tmp.write_text(json.dumps({"lock": os.path.abspath(lock), "dataset": dataset,
                                   "url": url}) + "\n")


def _record_pending_pin(archive: Path) -> None:
    """Record the SHA-256 of an archive that :func:`fetch` left unpinned, now that it unpacked."""
    note = _pending_pin_file(archive)
    if not note.exists():
        return
    try:
        pin = json.loads(note.read_text())
        lock, dataset, url = pin["lock"], pin["dataset"], pin["url"]
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f"{note}: expected JSON with 'lock', 'dataset' and 'url' ({e!r}); "
                         "delete it and the archive beside it, and download again") from e
    check_or_record(lock, dataset, url, archive)
    note.unlink()


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


def _resume_file(part: Path) -> Path:
    """Where the version of the file that ``part`` holds is noted (URL, ETag, Last-Modified,
    total size), so a resumed transfer is spliced onto bytes of the same version only."""
    return part.with_name(part.name + ".json")


def _pending_pin_file(archive: Path) -> Path:
    """Beside an archive that still has to be pinned in the lock file: which lock, dataset and
    URL; :func:`extract` records the pin once the archive has unpacked."""
    return archive.with_name(archive.name + PENDING_PIN_SUFFIX)


def _discard(part: Path) -> None:
    part.unlink(missing_ok=True)
    _resume_file(part).unlink(missing_ok=True)


def _read_resume(part: Path, url: str) -> dict | None:
    """What is known of the version in ``part``; None when nothing (or another URL's) is."""
    try:
        state = json.loads(_resume_file(part).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or state.get("url") != url:
        return None
    return state


def _write_resume(part: Path, url: str, headers: Message, total: int | None) -> None:
    etag = headers.get("ETag")
    if etag is not None and etag.startswith("W/"):
        etag = None  # a weak ETag must not be sent in If-Range (RFC 9110, 13.1.5)
    state = {"url": url, "etag": etag, "last_modified": headers.get("Last-Modified"),
             "total": total}
    _resume_file(part).write_text(json.dumps(state) + "\n")


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) of a Content-Range header such as ``bytes 100-199/1000`` or
    ``bytes */1000``; None for a part that is absent, ``*`` or malformed."""
    match = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", value or "")
    if match is None:
        return None, None
    start, total = match.groups()
    return (int(start) if start is not None else None,
            int(total) if total not in (None, "*") else None)


class _StalePartError(Exception):
    """The partial file cannot be continued (another version, another offset, wrong size):
    discard it and download from the first byte."""


class _CutShortError(Exception):
    """The connection ended before the bytes the server announced had arrived."""


# Failures that another attempt may not meet: the network, the server's load, a cut transfer.
_TRANSIENT = (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException,
              ssl.SSLError, _CutShortError)


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
    """Stream ``url`` into ``part``, resuming from its current size; retry transient failures.

    Bytes are appended to a partial file only when the server shows that they continue it: the
    answer is a 206 whose Content-Range starts where the file ends, for the version noted beside
    it (If-Range with its ETag or Last-Modified, or the same total size where the server gives
    neither). Anything else discards the partial file and starts from the first byte, so two
    versions of a file are never spliced into one.
    """
    failures = 0
    while True:
        have = part.stat().st_size if part.exists() else 0
        try:
            _attempt(url, part, have, timeout=timeout, progress=progress,
                     progress_every=progress_every)
            return
        except _StalePartError as e:
            log.warning("%s: %s; discarding the %d bytes downloaded before and starting over",
                        url, e, have)
            _discard(part)
            if have:
                continue  # not a failure of the network: the next attempt starts from 0
            last_error: Exception = e
        except urllib.error.HTTPError as e:
            if 400 <= e.code < 500 and e.code not in (408, 429):
                raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from e
            last_error = e
        except _TRANSIENT as e:
            last_error = e
        if failures >= retries:
            raise DownloadError(f"{url}: failed after {failures + 1} attempts: "
                                f"{str(last_error) or type(last_error).__name__}")
        wait = backoff * 2**failures
        log.warning("download of %s failed (%s); retrying in %.0f s", url,
                    str(last_error) or type(last_error).__name__, wait)
        time.sleep(wait)
        failures += 1


def _attempt(url: str, part: Path, have: int, *, timeout: float, progress: Progress | None,
             progress_every: float) -> None:
    """One HTTP request: continue ``part`` from byte ``have`` or, when it cannot be continued,
    write it anew. Raises :class:`_StalePartError` or :class:`_CutShortError` for the caller."""
    resume = _read_resume(part, url) if have else None
    if have and resume is None:
        raise _StalePartError("nothing records which version of the file the partial "
                              "download holds")
    request = urllib.request.Request(url, headers={"User-Agent": "ecg-transfer"})
    if resume is not None:
        request.add_header("Range", f"bytes={have}-")
        validator = resume.get("etag") or resume.get("last_modified")
        if validator:
            request.add_header("If-Range", validator)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and resume is not None:
            _check_complete(part, have, e.headers.get("Content-Range"), resume)
            if progress is not None:
                progress(have, have, False)
            return
        raise
    with response:
        content_type = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type in ("text/html", "application/xhtml+xml"):
            _discard(part)
            raise DownloadError(
                f"{url}: the server answered with a web page (Content-Type {content_type}), not "
                "an archive; the URL probably leads to a landing, login or error page. Open it "
                "in a browser and put the archive's direct link in the config (nothing was kept)")
        length = response.headers.get("Content-Length")
        if response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start != have:
                raise _StalePartError(f"asked for the bytes from {have} on, the server sent a part "
                               f"starting at {start} (Content-Range "
                               f"{response.headers.get('Content-Range')!r})")
            if resume is not None and None not in (resume.get("total"), total) \
                    and resume["total"] != total:
                raise _StalePartError(f"the file now has {total} bytes, not {resume['total']}")
            if total is None and length is not None:
                total = have + int(length)
        else:
            if have:
                log.info("%s: the server sent the whole file (it changed since the partial "
                         "download, or the server ignores Range); starting over", url)
            have = 0
            total = int(length) if length is not None else None
        if have == 0:
            _write_resume(part, url, response.headers, total)
        done = _stream(response, part, have, total, progress=progress,
                       progress_every=progress_every)
    if total is not None and done < total:
        raise _CutShortError(f"{url}: connection closed at {done} of {total} bytes")
    if progress is not None:
        progress(done, total, False)


def _stream(response: BinaryIO, part: Path, have: int, total: int | None, *,
            progress: Progress | None, progress_every: float) -> int:
    """Append the response's body to ``part`` (truncated first when ``have`` is 0); returns the
    size of ``part`` afterwards."""
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
    return done


def _check_complete(part: Path, have: int, content_range: str | None, resume: dict) -> None:
    """A 416 to ``Range: bytes=<have>-`` means the partial file is complete only when the file
    has exactly ``have`` bytes; a longer partial file is a stale one of another version."""
    _, total = _content_range(content_range)
    if total is None:
        total = resume.get("total")
    if total != have:
        size = "an unknown number of" if total is None else total
        raise _StalePartError(f"the partial download has {have} bytes but the file has {size} "
                       "(HTTP 416 to the request for the rest)")


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
    """Hold an exclusive lock on a sidecar of ``lock`` (not on ``lock`` itself, which is
    replaced by a rename on every write, so a lock on its inode would protect nothing).

    The sidecar is shared by everyone who records in the same folder, so the lock must not need
    write access to it: a colleague's sidecar, created 0644 under the usual umask, is opened
    read-only and locked with ``flock`` (which, unlike ``lockf``, takes an exclusive lock on a
    read-only file). It is never followed if it is a symbolic link, which someone else with
    write access to the folder could have planted.
    """
    sidecar = lock.with_name(f".{lock.name}.flock")
    sidecar.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        try:
            fd = os.open(sidecar, os.O_RDWR | flags, 0o666)
        except PermissionError:
            fd = os.open(sidecar, os.O_RDONLY | flags)
    except OSError as e:
        reason = "a symbolic link" if e.errno == errno.ELOOP else e.strerror
        raise OSError(e.errno, f"{sidecar}: cannot open the checksum lock's sidecar ({reason}); "
                      "remove it if it is not a plain file") from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


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

    Used where the source publishes no checksum: the first download that unpacks (see
    :func:`extract`) is pinned, later ones must match. An entry for another URL (the config now
    points elsewhere) is replaced, as the old hash says nothing about the new file. Concurrent
    downloads of different datasets update the same file, so the read-compare-write runs under an
    exclusive lock and the file is rewritten atomically. Returns the file's SHA-256.
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
            tmp.chmod(0o644)  # readable by everyone whatever the umask: it is meant to be shared
            tmp.write_text(
                "# SHA-256 of the first download of each dataset whose source publishes no\n"
                "# checksum; later downloads must match. Written by ecg_transfer.download.\n"
                + yaml.safe_dump(entries, sort_keys=True)
            )
        log.info("%s: recorded sha256 %s of %s for '%s'", lock, actual, url, dataset)
    return actual


def extract(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Unpack a zip or tar(.gz/.bz2/.xz) archive into ``dest`` (format detected from the bytes).

    Members with absolute paths, ``..`` components, or links pointing outside ``dest`` are
    rejected before anything is written, and so is an archive that would expand beyond
    :func:`expansion_limit` or beyond the free space beside ``dest``. Extraction goes to a
    sibling temp folder that is renamed to ``dest`` at the end, so an interrupted extraction
    never looks complete.

    A damaged archive must fail here, not yield a quietly incomplete dataset: the compressed
    stream of a tar is read to its end so that its CRC is checked, and a tar must end with its
    end-of-archive block, which a file cut at a member boundary lacks. Any such failure is a
    ValueError naming the archive; a full disk is an OSError (ENOSPC) naming the folder.

    An archive that :func:`fetch` downloaded without a checksum to check it against is recorded in
    the checksum lock file here, after it has unpacked and before ``dest`` appears: a web page or
    a truncated transfer fails to unpack and is never pinned.
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
                # zipfile stops each member at its declared size (and checks its CRC there), so
                # the declared sizes bound what is written
                _check_expanded_size(archive, tmp, sum(i.file_size for i in zf.infolist()))
                zf.extractall(tmp)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                members = tf.getmembers()
                for member in members:
                    _check_member(archive, member.name, tmp)
                    if member.issym() or member.islnk():
                        target = Path(member.name).parent / member.linkname
                        _check_member(archive, str(target), tmp, what="link target")
                _check_expanded_size(archive, tmp, sum(m.size for m in members))
                tf.extractall(tmp, filter="data")
                _check_tar_end(tf)
        else:
            raise ValueError(f"{archive}: not a zip or tar archive (truncated or wrong file?)"
                             + _unpinned_hint(archive))
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if e.errno == errno.ENOSPC:
            raise OSError(errno.ENOSPC, f"disk full: {dest.parent} ({e.strerror or e}) while "
                          f"extracting {archive}; nothing was kept, free space there and rerun"
                          ) from e
        if e.errno is not None:  # the file system failed us, not the archive's bytes
            raise OSError(e.errno, f"{archive}: extracting into {tmp} failed: {e}") from e
        raise ValueError(f"{archive}: corrupt or truncated archive: {e}"
                         + _unpinned_hint(archive)) from e
    except _CORRUPT as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ValueError(f"{archive}: corrupt or truncated archive: "
                         f"{str(e) or type(e).__name__}" + _unpinned_hint(archive)) from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        _record_pending_pin(archive)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return dest


# An archive may expand to at most MAX_EXPANSION_RATIO times its size or MAX_EXPANSION_FLOOR
# bytes, whichever is larger: the ratio stops zip bombs (a 261 KB zip of zeros expands 1000-fold),
# the floor lets small, well-compressed archives and real datasets (PTB-XL: 1.7 GB to 3 GB) pass.
MAX_EXPANSION_RATIO = 200
MAX_EXPANSION_FLOOR = 1 << 30

# What the decompressors and archive readers raise for bytes that are not a whole archive
# (an OSError without errno, such as gzip's BadGzipFile, is handled beside these).
_CORRUPT = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError)


def expansion_limit(archive_bytes: int) -> int:
    """How many bytes an archive of ``archive_bytes`` may expand to (see MAX_EXPANSION_RATIO)."""
    return max(MAX_EXPANSION_RATIO * archive_bytes, MAX_EXPANSION_FLOOR)


def _check_expanded_size(archive: Path, folder: Path, expanded: int) -> None:
    """Refuse, before writing anything, an archive that expands implausibly far or that the
    disk under ``folder`` cannot hold."""
    size = archive.stat().st_size
    limit = expansion_limit(size)
    if expanded > limit:
        raise ValueError(
            f"{archive}: expands to {expanded} bytes, {expanded / max(size, 1):.0f} times its "
            f"{size} bytes, more than the {limit} bytes allowed (at most {MAX_EXPANSION_RATIO} "
            f"times its size or {MAX_EXPANSION_FLOOR} bytes); a zip bomb or a wrong file? "
            "(nothing was extracted)")
    free = shutil.disk_usage(folder).free
    if expanded > free:
        raise OSError(errno.ENOSPC, f"{free} bytes free, but the archive expands to "
                      f"{expanded} bytes")


def _check_tar_end(tf: tarfile.TarFile) -> None:
    """Fail unless the tar ends with its end-of-archive block and its compressed stream is whole.

    tarfile stops at the end-of-archive block and never reads the gzip/bz2/xz trailer, so a CRC
    error there would pass unseen; and it takes the end of the file for the end of the archive,
    so a tar cut at a member boundary would unpack some members without complaint.
    """
    stream = tf.fileobj
    if stream is None:  # only a closed TarFile has none
        raise ValueError("_check_tar_end needs an open archive")
    stream.seek(tf.offset)  # where getmembers() found the end of the members
    if stream.read(tarfile.BLOCKSIZE) != tarfile.NUL * tarfile.BLOCKSIZE:
        raise tarfile.ReadError(f"no end-of-archive block after the last member (at byte "
                                f"{tf.offset}): the archive was cut short")
    while stream.read(CHUNK):  # the decompressor checks length and CRC at the stream's end
        pass


def _unpinned_hint(archive: Path) -> str:
    """What to do about an archive that fails to unpack and that nothing else has checked."""
    if not _pending_pin_file(archive).exists():
        return ""
    return ("; no checksum was known for it, so it was not recorded in the checksum lock file: "
            f"delete {archive} and rerun to download it again")


def _check_member(archive: Path, name: str, root: Path, what: str = "member") -> None:
    path = Path(name)
    if path.is_absolute() or ".." in path.parts:
        raise ValueError(f"{archive}: unsafe archive {what} {name!r} (absolute or '..')")
    resolved = (root / path).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise ValueError(f"{archive}: archive {what} {name!r} points outside the target folder")
