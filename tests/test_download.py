"""Downloads over real HTTP (127.0.0.1): checksums, atomicity, resume, safe extraction."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import pytest

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
