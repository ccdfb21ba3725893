"""Downloads over real HTTP (127.0.0.1): checksums, atomicity, resume, safe extraction, and
servers that answer with the wrong thing (a web page, another offset, another version)."""

from __future__ import annotations

import errno
import hashlib
import http.server
import io
import logging
import multiprocessing
import os
import random
import re
import shutil
import ssl
import tarfile
import tempfile
import threading
import traceback
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from ecg_transfer import download


def _payload(n: int = 3_000_000) -> bytes:
    return bytes(range(256)) * (n // 256)


def test_fetch_verifies_and_places_file(file_server, tmp_path):
    data = _payload()
    (file_server.root / "a.zip").write_bytes(data)
    dest = tmp_path / "out" / "a.archive"
    download.fetch(file_server.url("a.zip"), dest, md5=hashlib.md5(data).hexdigest(),
                   sha256=hashlib.sha256(data).hexdigest())
    assert dest.read_bytes() == data
    assert not dest.with_name("a.archive.part").exists()


def test_bad_checksum_keeps_nothing(file_server, tmp_path):
    (file_server.root / "a.zip").write_bytes(_payload())
    dest = tmp_path / "a.archive"
    with pytest.raises(download.ChecksumError, match=r"sha256 of http://127\.0\.0\.1.*a\.zip"):
        download.fetch(file_server.url("a.zip"), dest, sha256="0" * 64)
    assert list(tmp_path.iterdir()) == [file_server.root]


def test_interrupted_download_resumes_with_range(file_server, tmp_path):
    data = _payload()
    (file_server.root / "big.tar").write_bytes(data)
    file_server.cut_after["big.tar"] = 1_000_000
    dest = tmp_path / "big.archive"
    download.fetch(file_server.url("big.tar"), dest, sha256=hashlib.sha256(data).hexdigest(),
                   backoff=0.01)
    assert dest.read_bytes() == data
    ranges = [r for name, r in file_server.requests if name == "big.tar"]
    assert ranges[0] is None
    assert ranges[1] is not None and int(ranges[1].split("=")[1].rstrip("-")) >= 1_000_000


def test_missing_url_is_clear_error(file_server, tmp_path):
    with pytest.raises(download.DownloadError, match="HTTP 404"):
        download.fetch(file_server.url("nope.zip"), tmp_path / "x", backoff=0.01)


def test_file_url_relative_and_absolute(tmp_path, monkeypatch):
    src = tmp_path / "mirror" / "d.zip"
    src.parent.mkdir()
    src.write_bytes(b"abc")
    monkeypatch.chdir(tmp_path)
    out = download.fetch("file:mirror/d.zip", tmp_path / "o1", md5=hashlib.md5(b"abc").hexdigest())
    assert out.read_bytes() == b"abc"
    out = download.fetch(src.as_uri(), tmp_path / "o2")
    assert out.read_bytes() == b"abc"
    with pytest.raises(download.DownloadError, match="no such file"):
        download.fetch("file:mirror/missing.zip", tmp_path / "o3")


def test_a_local_file_is_linked_not_copied_and_a_bad_one_leaves_the_source_alone(tmp_path):
    src = tmp_path / "d.zip"
    src.write_bytes(b"abc")
    out = download.fetch(src.as_uri(), tmp_path / "o", sha256=hashlib.sha256(b"abc").hexdigest())
    # one copy on disk (tmp_path is one file system): the download is the source's inode
    assert out.stat().st_ino == src.stat().st_ino and src.stat().st_nlink == 2
    with pytest.raises(download.ChecksumError):
        download.fetch(src.as_uri(), tmp_path / "bad", sha256="0" * 64)
    assert not (tmp_path / "bad").exists() and not (tmp_path / "bad.part").exists()
    assert src.read_bytes() == b"abc" and src.stat().st_nlink == 2


def _zip_with(names: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in names.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_extract_zip_and_tar(tmp_path):
    z = tmp_path / "a.archive"
    z.write_bytes(_zip_with({"top/x.hea": b"x", "top/sub/y.dat": b"yy"}))
    out = download.extract(z, tmp_path / "raw")
    assert (out / "top" / "sub" / "y.dat").read_bytes() == b"yy"
    t = tmp_path / "b.archive"
    with tarfile.open(t, "w:gz") as tf:
        info = tarfile.TarInfo("WFDB/A0001.hea")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"hea"))
    out = download.extract(t, tmp_path / "raw2")
    assert (out / "WFDB" / "A0001.hea").read_bytes() == b"hea"


@pytest.mark.parametrize("member", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt"])
def test_extract_rejects_escaping_members(tmp_path, member):
    z = tmp_path / "a.archive"
    z.write_bytes(_zip_with({member: b"x"}))
    with pytest.raises(ValueError, match="unsafe archive member"):
        download.extract(z, tmp_path / "raw")
    assert not (tmp_path / "raw").exists() and not (tmp_path / "raw.tmp").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_extract_rejects_link_outside(tmp_path):
    t = tmp_path / "a.archive"
    with tarfile.open(t, "w") as tf:
        info = tarfile.TarInfo("data/link")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../../etc/passwd"
        tf.addfile(info)
    with pytest.raises(ValueError, match="link target"):
        download.extract(t, tmp_path / "raw")


def test_truncated_archive_is_error_and_leaves_nothing(tmp_path):
    data = _zip_with({"top/x.dat": b"x" * 10000})
    z = tmp_path / "a.archive"
    z.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"a\.archive"):
        download.extract(z, tmp_path / "raw")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.archive"]


def test_not_an_archive(tmp_path: Path):
    f = tmp_path / "a.archive"
    f.write_bytes(b"<html>not found</html>")
    with pytest.raises(ValueError, match="not a zip or tar archive"):
        download.extract(f, tmp_path / "raw")


def _noise(n: int, seed: int = 0) -> bytes:
    """Bytes that do not compress, so a compressed archive is about as long as its content."""
    return random.Random(seed).randbytes(n)


def _tar_with(files: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _assert_only_archive_left(tmp_path: Path) -> None:
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.archive"]


def test_a_tar_gz_with_a_bad_crc_is_corrupt_and_leaves_nothing(tmp_path):
    data = bytearray(_tar_with({"top/x.dat": _noise(5000)}, "w:gz"))
    data[-8] ^= 0xFF  # the gzip trailer's CRC-32, read only at the end of the stream
    (tmp_path / "a.archive").write_bytes(data)
    with pytest.raises(ValueError, match=r"a\.archive: corrupt or truncated archive"):
        download.extract(tmp_path / "a.archive", tmp_path / "raw")
    _assert_only_archive_left(tmp_path)


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_a_damaged_tar_xz_is_an_error_naming_the_archive(tmp_path, damage):
    data = bytearray(_tar_with({f"top/{i}.dat": _noise(20_000, seed=i) for i in range(4)},
                               "w:xz"))
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF
    (tmp_path / "a.archive").write_bytes(data)
    with pytest.raises(ValueError, match=r"a\.archive: corrupt or truncated archive"):
        download.extract(tmp_path / "a.archive", tmp_path / "raw")
    _assert_only_archive_left(tmp_path)


def test_a_plain_tar_cut_at_a_member_boundary_is_truncated_not_half_extracted(tmp_path):
    data = _tar_with({f"top/{i}.dat": b"x" * 1000 for i in range(20)})
    cut = 10 * (512 + 1024)  # ten members: a header block and two data blocks each
    (tmp_path / "a.archive").write_bytes(data[:cut])
    with pytest.raises(ValueError, match=r"a\.archive: .*no end-of-archive block"):
        download.extract(tmp_path / "a.archive", tmp_path / "raw")
    _assert_only_archive_left(tmp_path)


def test_an_archive_expanding_past_the_cap_is_refused_before_writing(tmp_path, monkeypatch):
    with zipfile.ZipFile(tmp_path / "a.archive", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.dat", bytes(1 << 20))  # about 1 KB: 1000 times smaller
    out = download.extract(tmp_path / "a.archive", tmp_path / "raw")  # under the 1 GiB floor
    assert (out / "zeros.dat").stat().st_size == 1 << 20
    monkeypatch.setattr(download, "MAX_EXPANSION_FLOOR", 1000)
    with pytest.raises(ValueError, match=r"a\.archive: expands to 1048576 bytes, \d+ times"):
        download.extract(tmp_path / "a.archive", tmp_path / "raw2")
    assert not (tmp_path / "raw2").exists() and not (tmp_path / "raw2.tmp").exists()


def test_an_archive_larger_than_the_free_space_is_refused_naming_folder_and_sizes(
        tmp_path, monkeypatch):
    (tmp_path / "a.archive").write_bytes(_zip_with({"x.dat": _noise(5000)}))
    monkeypatch.setattr(download.shutil, "disk_usage", lambda path: SimpleNamespace(free=100))
    with pytest.raises(OSError, match=rf"disk full: {re.escape(str(tmp_path))} "
                                      r"\(100 bytes free, but the archive expands to 5000"):
        download.extract(tmp_path / "a.archive", tmp_path / "raw")
    _assert_only_archive_left(tmp_path)


def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_a_full_disk_is_reported_as_such_not_as_a_corrupt_archive(tmp_path, monkeypatch, kind):
    files = {"x.dat": _noise(5000)}
    data = _zip_with(files) if kind == "zip" else _tar_with(files, "w:gz")
    (tmp_path / "a.archive").write_bytes(data)
    monkeypatch.setattr(shutil, "copyfileobj", _full_disk)  # what zipfile writes with
    monkeypatch.setattr(tarfile, "copyfileobj", _full_disk)
    with pytest.raises(OSError, match=rf"disk full: {re.escape(str(tmp_path))} ") as e:
        download.extract(tmp_path / "a.archive", tmp_path / "raw")
    assert e.value.errno == errno.ENOSPC and "corrupt" not in str(e.value)
    _assert_only_archive_left(tmp_path)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _archive(tag: bytes = b"", n: int = 100_000) -> bytes:
    return _zip_with({"top/x.dat": tag + _payload(n)})


def test_first_download_is_recorded_in_lock_once_extracted_then_verified(file_server, tmp_path):
    data = _archive()
    (file_server.root / "d.zip").write_bytes(data)
    lock = tmp_path / "checksums.lock.yaml"
    url = file_server.url("d.zip")
    download.fetch(url, tmp_path / "a1", lock=lock, dataset="ptb")
    assert not lock.exists()  # nothing has checked the bytes yet
    download.extract(tmp_path / "a1", tmp_path / "raw")
    assert not (tmp_path / f"a1{download.PENDING_PIN_SUFFIX}").exists()
    entry = yaml.safe_load(lock.read_text())["ptb"]
    assert entry["url"] == url and entry["sha256"] == _sha(data)
    assert entry["bytes"] == len(data) and entry["recorded"].startswith("20")
    before = lock.read_text()
    download.fetch(url, tmp_path / "a2", lock=lock, dataset="ptb")  # same bytes: verified
    assert (tmp_path / "a2").read_bytes() == data
    assert not (tmp_path / f"a2{download.PENDING_PIN_SUFFIX}").exists()
    assert lock.read_text() == before


def test_changed_source_is_checksum_error_naming_url_lock_and_hashes(file_server, tmp_path):
    old, new = _archive(n=50_000), _archive(b"changed", n=50_000)
    (file_server.root / "d.zip").write_bytes(old)
    lock = tmp_path / "checksums.lock.yaml"
    url = file_server.url("d.zip")
    download.fetch(url, tmp_path / "a1", lock=lock, dataset="ptb")
    download.extract(tmp_path / "a1", tmp_path / "raw")
    before = lock.read_text()
    (file_server.root / "d.zip").write_bytes(new)
    with pytest.raises(download.ChecksumError) as e:
        download.fetch(url, tmp_path / "a2", lock=lock, dataset="ptb")
    message = str(e.value)
    for part in (url, str(lock), _sha(old), _sha(new), "'ptb'"):
        assert part in message
    assert not (tmp_path / "a2").exists() and not (tmp_path / "a2.part").exists()
    assert lock.read_text() == before


def test_url_change_is_a_new_entry_not_a_mismatch(file_server, tmp_path, caplog):
    one, two = _archive(b"one", n=1000), _archive(b"two", n=1000)
    (file_server.root / "v1.zip").write_bytes(one)
    (file_server.root / "v2.zip").write_bytes(two)
    lock = tmp_path / "checksums.lock.yaml"
    for name in ("v1.zip", "v2.zip"):
        download.fetch(file_server.url(name), tmp_path / "a", lock=lock, dataset="ptb")
        download.extract(tmp_path / "a", tmp_path / "raw")
    entry = yaml.safe_load(lock.read_text())["ptb"]
    assert entry["url"] == file_server.url("v2.zip") and entry["sha256"] == _sha(two)
    assert "url of 'ptb' changed" in caplog.text


def test_pinned_checksum_or_local_file_leaves_the_lock_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("m.zip").write_bytes(b"abc")
    lock = tmp_path / "checksums.lock.yaml"
    download.fetch("file:m.zip", tmp_path / "o", sha256=_sha(b"abc"), lock=lock, dataset="ptb")
    assert not lock.exists()
    download.fetch("file:m.zip", tmp_path / "o", lock=lock, dataset="ptb")  # local: not pinned
    assert not lock.exists()
    with pytest.raises(ValueError, match="needs the dataset name"):
        download.fetch("file:m.zip", tmp_path / "o", lock=lock)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- just a list\n", "expected a mapping of dataset name to entry"),
        ("ptb: {url: x, sha256: y}\n", r"entry 'ptb' lacks field\(s\) \['bytes', 'recorded'\]"),
        ("ptb: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_lock_file_names_the_file(tmp_path, text, message):
    lock = tmp_path / "checksums.lock.yaml"
    lock.write_text(text)
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(ValueError, match=message) as e:
        download.check_or_record(lock, "ptb", "file:f", tmp_path / "f")
    assert str(lock) in str(e.value)


def _record_many(lock: str, worker: int, files: list[str]) -> None:
    for i, path in enumerate(files):
        download.check_or_record(lock, f"d{worker}_{i}", f"file:{path}", path)


def test_concurrent_recording_keeps_every_entry(tmp_path):
    files = []
    for i in range(6):
        f = tmp_path / f"f{i}"
        f.write_bytes(bytes([i]) * 1000)
        files.append(str(f))
    lock = tmp_path / "checksums.lock.yaml"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        pool.starmap(_record_many, [(str(lock), w, files) for w in range(4)])
    entries = download.read_lock(lock)
    assert len(entries) == 4 * len(files)
    assert entries["d3_5"]["sha256"] == _sha(bytes([5]) * 1000)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_second_user_records_in_the_lock_file_the_first_user_created(other_user):
    # A shared project folder (writable by both users, here by everyone): the first user, under
    # the common umask 022, creates the lock file and its flock sidecar; the second must be able
    # to take the lock and add an entry (issue 19: the sidecar was opened for appending, which
    # the second user may not do on a 0644 file).
    nobody = other_user
    # Not under pytest's tmp_path (0700): the other user must reach the folder.
    shared = Path(tempfile.mkdtemp(prefix="ecg-shared-"))
    try:
        shared.chmod(0o777)
        first, second = shared / "first.zip", shared / "second.zip"
        first.write_bytes(b"first" * 100)
        second.write_bytes(b"second" * 100)
        for f in (first, second):
            f.chmod(0o644)
        lock = shared / "checksums.lock.yaml"
        old = os.umask(0o022)
        try:
            download.check_or_record(lock, "mine", "https://example.org/first.zip", first)
        finally:
            os.umask(old)
        # The second user: a forked child that drops to `nobody` and calls the function it has
        # already imported, so it needs no access to the checkout or its .venv (which a clone
        # in a 0700 folder would deny it).
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                os.setgroups([])
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
                download.check_or_record(lock, "theirs", "https://example.org/second.zip",
                                         second)
                status = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(status)
        _, wait_status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(wait_status) == 0, "the second user could not record"
        entries = download.read_lock(lock)
        assert entries["mine"]["sha256"] == _sha(b"first" * 100)
        assert entries["theirs"]["sha256"] == _sha(b"second" * 100)
        # The sidecar is no way in for the other user: they could not have planted a link.
        sidecar = shared / ".checksums.lock.yaml.flock"
        assert sidecar.is_file() and not sidecar.is_symlink()
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_a_lock_sidecar_planted_as_a_symlink_is_not_followed(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    (tmp_path / ".checksums.lock.yaml.flock").symlink_to(target)
    archive = tmp_path / "a.zip"
    archive.write_bytes(b"x" * 10)
    with pytest.raises(OSError, match=r"\.checksums\.lock\.yaml\.flock"):
        download.check_or_record(tmp_path / "checksums.lock.yaml", "d", "file:a", archive)
    assert target.read_text() == "keep me"


def test_progress_log_reports_bytes_percent_rate_and_eta(caplog):
    clock = iter([0.0, 10.0, 20.0, 30.0, 130.0])
    logger = logging.getLogger("test.progress")
    report = download.ProgressLog("http://x/a.zip", logger, clock=lambda: next(clock))
    with caplog.at_level(logging.INFO, logger="test.progress"):
        report(0, 100_000_000, True)
        report(20_000_000, 100_000_000, False)
        report(50_000_000, 100_000_000, False)
        report(10_000_000, None, True)  # a retry that resumes, on a server without a length
        report(400_000_000, 1_000_000_000, False)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "http://x/a.zip: 0.0 of 100.0 MB (0.0%), starting"
    assert lines[1] == "http://x/a.zip: 20.0 of 100.0 MB (20.0%), 2.00 MB/s, 40 s left"
    assert lines[2] == "http://x/a.zip: 50.0 of 100.0 MB (50.0%), 3.00 MB/s, 17 s left"
    assert lines[3] == "http://x/a.zip: 10.0 MB (size unknown), resuming"
    assert lines[4] == "http://x/a.zip: 400.0 of 1000.0 MB (40.0%), 3.90 MB/s, 2.6 min left"


def test_fetch_reports_progress_at_start_during_and_end(file_server, tmp_path):
    data = _payload()
    (file_server.root / "p.zip").write_bytes(data)
    calls: list[tuple[int, int | None, bool]] = []
    download.fetch(file_server.url("p.zip"), tmp_path / "p",
                   progress=lambda *a: calls.append(a), progress_every=0)
    assert calls[0] == (0, len(data), True) and calls[-1] == (len(data), len(data), False)
    assert len(calls) >= 3 and not any(starting for *_, starting in calls[1:])
    assert [d for d, *_ in calls] == sorted(d for d, *_ in calls)


def test_retry_backs_off_and_resumes_with_progress(file_server, tmp_path, monkeypatch, caplog):
    data = _payload()
    (file_server.root / "r.zip").write_bytes(data)
    file_server.cut_after["r.zip"] = 700_000
    waits: list[float] = []
    monkeypatch.setattr(download.time, "sleep", waits.append)
    url = file_server.url("r.zip")
    with caplog.at_level(logging.INFO):
        download.fetch(url, tmp_path / "r", backoff=3.0, progress=download.ProgressLog(url))
    assert waits == [3.0]
    assert "failed" in caplog.text and "retrying in 3 s" in caplog.text
    assert ", resuming" in caplog.text  # the second attempt starts from the partial file
    assert (tmp_path / "r").read_bytes() == data


# Hostile servers: each test scripts the answers a real server has given, one per request.

Answer = Callable[[http.server.BaseHTTPRequestHandler], None]


@dataclass
class ScriptedServer:
    """Answers the n-th request for a name with ``script[name][n]`` (the last answer repeats);
    ``requests`` records each request's name and headers."""

    script: dict[str, list[Answer]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    port: int = 0

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def sent(self, name: str, header: str) -> list[str | None]:
        return [headers.get(header) for n, headers in self.requests if n == name]


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    server = ScriptedServer()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            name = self.path.lstrip("/")
            seen = sum(n == name for n, _ in server.requests)
            server.requests.append((name, dict(self.headers)))
            answers = server.script[name]
            answers[min(seen, len(answers) - 1)](self)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield server
    httpd.shutdown()
    httpd.server_close()


def _respond(h: http.server.BaseHTTPRequestHandler, status: int, body: bytes,
             headers: dict[str, str], cut: int | None = None) -> None:
    h.send_response(status)
    for key, value in headers.items():
        h.send_header(key, value)
    h.end_headers()
    h.wfile.write(body if cut is None else body[:cut])
    h.wfile.flush()
    h.close_connection = True


def _serve(data: bytes, *, cut: int | None = None, validators: dict[str, str] | None = None,
           content_type: str = "application/zip", length: bool = True,
           ranges: bool = True) -> Answer:
    """A correct server: Range honoured (unless not ``ranges``), If-Range compared with
    ``validators``, 416 past the end with the size; ``cut`` drops the connection after that many
    bytes of the body."""
    validators = validators or {}

    def answer(h: http.server.BaseHTTPRequestHandler) -> None:
        headers = {"Content-Type": content_type, **validators}
        rng, if_range = h.headers.get("Range"), h.headers.get("If-Range")
        if ranges and rng and (if_range is None or if_range in validators.values()):
            start = int(rng.split("=")[1].rstrip("-"))
            if start >= len(data):
                _respond(h, 416, b"", {"Content-Range": f"bytes */{len(data)}",
                                       "Content-Length": "0"})
                return
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            _respond(h, 206, data[start:], {**headers, "Content-Length": str(len(data) - start)},
                     cut)
            return
        if length:
            headers["Content-Length"] = str(len(data))
        _respond(h, 200, data, headers, cut)

    return answer


def _part_from(data: bytes, start: int) -> Answer:
    """A 206 that starts at ``start`` whatever was asked for."""
    def answer(h: http.server.BaseHTTPRequestHandler) -> None:
        _respond(h, 206, data[start:], {
            "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}",
            "Content-Length": str(len(data) - start), "Content-Type": "application/zip"})

    return answer


def _chunked_cut(data: bytes, cut: int) -> Answer:
    """A chunked 200 whose one chunk announces all of ``data`` and stops after ``cut`` bytes:
    http.client raises IncompleteRead."""
    def answer(h: http.server.BaseHTTPRequestHandler) -> None:
        h.protocol_version = "HTTP/1.1"
        h.send_response(200)
        h.send_header("Transfer-Encoding", "chunked")
        h.send_header("Content-Type", "application/zip")
        h.end_headers()
        h.wfile.write(f"{len(data):x}\r\n".encode() + data[:cut])
        h.wfile.flush()
        h.close_connection = True

    return answer


def _leaves_nothing(tmp_path: Path, lock: Path) -> None:
    assert not lock.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "checksums.lock.yaml") == []


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/xhtml+xml"])
def test_a_web_page_instead_of_the_archive_is_refused_naming_the_url(scripted, tmp_path,
                                                                   content_type):
    scripted.script["d.zip"] = [_serve(b"<html>Please log in</html>", content_type=content_type)]
    lock = tmp_path / "checksums.lock.yaml"
    url = scripted.url("d.zip")
    with pytest.raises(download.DownloadError, match="web page") as e:
        download.fetch(url, tmp_path / "a", lock=lock, dataset="ptb", backoff=0)
    assert url in str(e.value)
    assert len(scripted.requests) == 1  # not a transient failure: no retries
    _leaves_nothing(tmp_path, lock)


def test_a_web_page_answering_a_resume_discards_the_partial_file(scripted, tmp_path):
    data = _archive(n=300_000)
    scripted.script["d.zip"] = [_serve(data, cut=100_000),
                                _serve(b"<html>maintenance</html>",
                                       content_type="text/html", ranges=False)]
    lock = tmp_path / "checksums.lock.yaml"
    with pytest.raises(download.DownloadError, match="web page"):
        download.fetch(scripted.url("d.zip"), tmp_path / "a", lock=lock, dataset="ptb",
                       backoff=0)
    assert scripted.sent("d.zip", "Range") == [None, "bytes=100000-"]
    _leaves_nothing(tmp_path, lock)


def test_a_part_from_another_offset_is_not_spliced_but_restarted(scripted, tmp_path):
    data = _archive(n=300_000)
    scripted.script["d.zip"] = [_serve(data, cut=100_000), _part_from(data, 0), _serve(data)]
    lock = tmp_path / "checksums.lock.yaml"
    download.fetch(scripted.url("d.zip"), tmp_path / "a", lock=lock, dataset="ptb", backoff=0)
    assert (tmp_path / "a").read_bytes() == data
    assert scripted.sent("d.zip", "Range") == [None, "bytes=100000-", None]


def test_a_stale_longer_partial_file_and_a_416_restart_the_download(scripted, tmp_path):
    old, new = _archive(b"old", n=300_000), _archive(b"new", n=100_000)
    lock = tmp_path / "checksums.lock.yaml"
    url = scripted.url("d.zip")
    scripted.script["d.zip"] = [_serve(old, cut=200_000)]
    with pytest.raises(download.DownloadError, match="connection closed at 200000"):
        download.fetch(url, tmp_path / "a", lock=lock, dataset="ptb", retries=0)
    assert (tmp_path / "a.part").stat().st_size == 200_000 > len(new)
    scripted.script["d.zip"] = [_serve(new)]  # the source now holds a shorter file
    download.fetch(url, tmp_path / "a", lock=lock, dataset="ptb", backoff=0)
    assert (tmp_path / "a").read_bytes() == new
    assert scripted.sent("d.zip", "Range") == [None, "bytes=200000-", None]
    download.extract(tmp_path / "a", tmp_path / "raw")
    assert download.read_lock(lock)["ptb"]["sha256"] == _sha(new)


def test_a_416_to_a_complete_partial_file_finishes_it(scripted, tmp_path):
    data = _archive(n=100_000)
    url = scripted.url("d.zip")
    scripted.script["d.zip"] = [_serve(data, cut=len(data) - 1)]
    with pytest.raises(download.DownloadError):
        download.fetch(url, tmp_path / "a", retries=0)
    (tmp_path / "a.part").open("ab").write(data[-1:])  # the last byte came before the kill
    scripted.script["d.zip"] = [_serve(data)]
    download.fetch(url, tmp_path / "a", sha256=_sha(data))
    assert scripted.sent("d.zip", "Range")[-1] == f"bytes={len(data)}-"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


@pytest.mark.parametrize("validator", [{"ETag": '"v1"'},
                                       {"Last-Modified": "Tue, 01 Dec 2026 10:00:00 GMT"}])
def test_a_file_changed_between_attempts_is_downloaded_anew_not_spliced(scripted, tmp_path,
                                                                         validator):
    old, new = _archive(b"AAA", n=300_000), _archive(b"BBB", n=300_000)
    assert len(old) == len(new)  # only If-Range can tell them apart
    url = scripted.url("d.zip")
    scripted.script["d.zip"] = [_serve(old, cut=100_000, validators=validator)]
    with pytest.raises(download.DownloadError):
        download.fetch(url, tmp_path / "a", retries=0)
    changed = {key: "changed" for key in validator}
    scripted.script["d.zip"] = [_serve(new, validators=changed)]
    download.fetch(url, tmp_path / "a")
    assert (tmp_path / "a").read_bytes() == new
    assert scripted.sent("d.zip", "If-Range") == [None, *validator.values()]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_an_unchanged_file_resumes_under_if_range(scripted, tmp_path):
    data = _archive(n=300_000)
    scripted.script["d.zip"] = [_serve(data, cut=100_000, validators={"ETag": '"v1"'}),
                                _serve(data, validators={"ETag": '"v1"'})]
    download.fetch(scripted.url("d.zip"), tmp_path / "a", backoff=0)
    assert (tmp_path / "a").read_bytes() == data
    assert scripted.sent("d.zip", "Range") == [None, "bytes=100000-"]
    assert scripted.sent("d.zip", "If-Range") == [None, '"v1"']


def test_an_incomplete_chunked_read_is_retried_and_resumed(scripted, tmp_path):
    data = _archive(n=3_000_000)
    scripted.script["d.zip"] = [_chunked_cut(data, 1_500_000), _serve(data)]
    download.fetch(scripted.url("d.zip"), tmp_path / "a", sha256=_sha(data), backoff=0)
    assert (tmp_path / "a").read_bytes() == data
    assert scripted.sent("d.zip", "Range")[1] is not None


def test_an_ssl_eof_mid_transfer_is_retried(file_server, tmp_path, monkeypatch):
    data = _payload()
    (file_server.root / "d.zip").write_bytes(data)
    real_urlopen, opened = urllib.request.urlopen, []

    def eof(*args):
        raise ssl.SSLEOFError(8, "EOF occurred in violation of protocol")

    def urlopen(*args, **kwargs):
        response = real_urlopen(*args, **kwargs)
        if not opened:
            response.read = eof
        opened.append(response)
        return response

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    download.fetch(file_server.url("d.zip"), tmp_path / "a", sha256=_sha(data), backoff=0)
    assert len(opened) == 2 and (tmp_path / "a").read_bytes() == data


def test_a_cut_transfer_without_length_fails_to_extract_and_is_never_pinned(scripted, tmp_path):
    data = _archive(n=300_000)
    scripted.script["d.zip"] = [_serve(data, cut=len(data) // 2, length=False)]
    lock = tmp_path / "checksums.lock.yaml"
    download.fetch(scripted.url("d.zip"), tmp_path / "a", lock=lock, dataset="ptb")
    assert not lock.exists()  # the cut cannot be seen in HTTP; the archive must prove itself
    with pytest.raises(ValueError, match=r"delete .*a and rerun"):
        download.extract(tmp_path / "a", tmp_path / "raw")
    assert not lock.exists() and not (tmp_path / "raw").exists()
    scripted.script["d.zip"] = [_serve(data)]  # the rerun the message asks for
    (tmp_path / "a").unlink()
    download.fetch(scripted.url("d.zip"), tmp_path / "a", lock=lock, dataset="ptb")
    download.extract(tmp_path / "a", tmp_path / "raw")
    assert download.read_lock(lock)["ptb"]["sha256"] == _sha(data)


def test_a_cut_transfer_that_runs_out_of_retries_is_never_pinned(scripted, tmp_path):
    data = _archive(n=300_000)
    scripted.script["d.zip"] = [_serve(data, cut=1000)]
    lock = tmp_path / "checksums.lock.yaml"
    with pytest.raises(download.DownloadError, match="failed after 2 attempts"):
        download.fetch(scripted.url("d.zip"), tmp_path / "a", lock=lock, dataset="ptb",
                       retries=1, backoff=0)
    assert not lock.exists() and not (tmp_path / "a").exists()
