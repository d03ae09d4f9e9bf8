"""Downloads from a local HTTP server (Range resume, truncation, checksums) and safe archive extraction."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from spectral_lib.data.download import (
    DATASETS,
    ChecksumError,
    UnsafeArchiveError,
    download,
    download_dataset,
    extract_archive,
    sha256sum,
)

PAYLOAD = bytes(range(256)) * 4000  # about 1 MB, not a multiple of the download chunk


class Server:
    """Serves ``files`` on 127.0.0.1 with ``Range: bytes=N-`` support; records each request's Range header.

    ``ignore_range`` answers 200 with the whole file; ``truncate_at`` sends the full Content-Length but closes the
    connection after that many bytes of the body (once). ``etag`` (when set) is sent with every answer, and a
    request whose ``If-Range`` differs from it gets the whole file (200), as RFC 9110 says."""

    def __init__(self, files):
        self.files = files
        self.ranges: list[str | None] = []
        self.if_ranges: list[str | None] = []
        self.ignore_range = False
        self.truncate_at: int | None = None
        self.etag: str | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                data = server.files.get(self.path)
                server.ranges.append(self.headers.get("Range"))
                server.if_ranges.append(self.headers.get("If-Range"))
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                start = 0
                rng = self.headers.get("Range")
                if_range = self.headers.get("If-Range")
                stale = if_range is not None and if_range != server.etag
                if rng and not server.ignore_range and not stale:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                if server.etag is not None:
                    self.send_header("ETag", server.etag)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if server.truncate_at is not None:
                    cut, server.truncate_at = server.truncate_at, None
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def url(self, path):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture
def server():
    s = Server({"/data.bin": PAYLOAD})
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_download_and_verify(server, tmp_path):
    out = download(server.url("/data.bin"), tmp_path, SHA, progress=False)
    assert out == tmp_path / "data.bin" and out.read_bytes() == PAYLOAD
    assert not (tmp_path / "data.bin.part").exists()
    assert download(server.url("/data.bin"), tmp_path, SHA, progress=False) == out
    assert len(server.ranges) == 1  # the verified file was not fetched again


def test_resume_from_part_uses_range(server, tmp_path):
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:300_001])
    out = download(server.url("/data.bin"), tmp_path / "data.bin", SHA, progress=False)
    assert server.ranges == ["bytes=300001-"]
    assert out.read_bytes() == PAYLOAD


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    server.ignore_range = True
    (tmp_path / "data.bin.part").write_bytes(b"junk" * 100)
    out = download(server.url("/data.bin"), tmp_path / "data.bin", SHA, progress=False)
    assert out.read_bytes() == PAYLOAD


def test_complete_part_answered_416_is_verified_and_moved(server, tmp_path):
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD)
    out = download(server.url("/data.bin"), tmp_path / "data.bin", SHA, progress=False)
    assert out.read_bytes() == PAYLOAD


def test_truncated_transfer_leaves_only_part_then_resumes(server, tmp_path):
    server.truncate_at = 123_456
    target = tmp_path / "data.bin"
    with pytest.raises(OSError, match="data.bin"):
        download(server.url("/data.bin"), target, SHA, progress=False)
    assert not target.exists()
    assert (tmp_path / "data.bin.part").stat().st_size == 123_456
    download(server.url("/data.bin"), target, SHA, progress=False)
    assert server.ranges[-1] == "bytes=123456-" and target.read_bytes() == PAYLOAD


def test_checksum_mismatch_removes_everything(server, tmp_path):
    with pytest.raises(ChecksumError, match=f"expected {'0' * 64}, got {SHA}"):
        download(server.url("/data.bin"), tmp_path / "x.bin", "0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_existing_file_with_wrong_digest_is_replaced(server, tmp_path):
    (tmp_path / "data.bin").write_bytes(b"stale")
    download(server.url("/data.bin"), tmp_path / "data.bin", SHA, progress=False)
    assert sha256sum(tmp_path / "data.bin") == SHA


def test_http_error_names_the_url(server, tmp_path):
    with pytest.raises(OSError, match=r"missing\.bin.*HTTP 404"):
        download(server.url("/missing.bin"), tmp_path / "m.bin", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_stale_part_without_a_checksum_is_not_resumed(server, tmp_path):
    """A ``.part`` we cannot vouch for (left by another tool, another URL or an older version of the file) must not
    become the start of the cached file when there is no checksum to catch it."""
    (tmp_path / "data.bin.part").write_bytes(b"X" * 300_001)
    out = download(server.url("/data.bin"), tmp_path / "data.bin", progress=False)
    assert out.read_bytes() == PAYLOAD
    assert server.ranges == [None]  # downloaded from the start
    assert not (tmp_path / "data.bin.part").exists() and not (tmp_path / "data.bin.part.json").exists()


def test_oversized_part_without_a_checksum_is_downloaded_again(server, tmp_path):
    """The server answers 416 (range not satisfiable) to a ``.part`` longer than the file: that is no proof that the
    ``.part`` is the file; its size is compared with the one the server states, and it is fetched again."""
    for name in ("a.bin", "b.bin"):
        server.files[f"/{name}"] = PAYLOAD
        (tmp_path / f"{name}.part").write_bytes(PAYLOAD + b"tail")
        (tmp_path / f"{name}.part.json").write_text(json.dumps({"url": server.url(f"/{name}")}))
    assert download(server.url("/a.bin"), tmp_path / "a.bin", progress=False).read_bytes() == PAYLOAD
    assert download(server.url("/b.bin"), tmp_path / "b.bin", SHA, progress=False).read_bytes() == PAYLOAD


def test_own_interrupted_download_resumes_without_checksum_and_restarts_when_the_file_changed(server, tmp_path):
    server.etag = '"v1"'
    server.truncate_at = 200_000
    target = tmp_path / "data.bin"
    with pytest.raises(OSError, match="interrupted|ended early"):
        download(server.url("/data.bin"), target, progress=False)
    assert json.loads((tmp_path / "data.bin.part.json").read_text())["etag"] == '"v1"'
    out = download(server.url("/data.bin"), target, progress=False)
    assert server.ranges[-1] == "bytes=200000-" and server.if_ranges[-1] == '"v1"'
    assert out.read_bytes() == PAYLOAD and not (tmp_path / "data.bin.part.json").exists()

    # The file changes on the server between the two attempts: If-Range makes it send the new file whole.
    new = bytes(reversed(PAYLOAD))
    server.files["/new.bin"] = PAYLOAD
    server.truncate_at = 100_000
    with pytest.raises(OSError):
        download(server.url("/new.bin"), tmp_path / "new.bin", progress=False)
    server.files["/new.bin"], server.etag = new, '"v2"'
    assert download(server.url("/new.bin"), tmp_path / "new.bin", progress=False).read_bytes() == new


def test_part_of_another_url_is_not_resumed(server, tmp_path):
    server.etag = '"v1"'
    server.files["/other/data.bin"] = bytes(reversed(PAYLOAD))
    (tmp_path / "data.bin.part").write_bytes(bytes(reversed(PAYLOAD))[:100_000])
    (tmp_path / "data.bin.part.json").write_text(json.dumps({"url": server.url("/other/data.bin"), "etag": '"v1"'}))
    assert download(server.url("/data.bin"), tmp_path / "data.bin", progress=False).read_bytes() == PAYLOAD


# ------------------------------------------------------------------------------------------------ extraction


def make_tar(path, members, mode="w:gz"):
    """members: list of (name, bytes) files, (name, None, linkname) symlinks or (name, "hard", linkname) hard
    links."""
    opened = tarfile.open(fileobj=path, mode=mode) if isinstance(path, io.BytesIO) else tarfile.open(path, mode)
    with opened as tar:
        for m in members:
            info = tarfile.TarInfo(m[0])
            if m[1] is None or m[1] == "hard":
                info.type = tarfile.SYMTYPE if m[1] is None else tarfile.LNKTYPE
                info.linkname = m[2]
                tar.addfile(info)
            else:
                info.size = len(m[1])
                tar.addfile(info, io.BytesIO(m[1]))
    return path


@pytest.mark.parametrize("suffix,mode", [(".tar.gz", "w:gz"), (".tar.bz2", "w:bz2")])
def test_extract_tar(tmp_path, suffix, mode):
    arc = make_tar(tmp_path / f"ds{suffix}", [("ds/metadata.csv", b"a|b|c\n"), ("ds/wavs/x.wav", b"RIFF")], mode)
    created = extract_archive(arc, tmp_path / "out")
    assert created == [tmp_path / "out" / "ds"]
    assert (tmp_path / "out/ds/wavs/x.wav").read_bytes() == b"RIFF"
    assert (tmp_path / "out/ds/metadata.csv").read_bytes() == b"a|b|c\n"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["ds"]  # no staging folder left
    with pytest.raises(FileExistsError, match="overwrite=True"):
        extract_archive(arc, tmp_path / "out")
    extract_archive(arc, tmp_path / "out", overwrite=True)


@pytest.mark.parametrize("members,match", [
    ([("ok.txt", b"x"), ("../evil", b"x")], r"escapes the target folder: '\.\./evil'"),
    ([("a/../../evil", b"x")], r"escapes the target folder: 'a/\.\./\.\./evil'"),
    ([("/etc/evil", b"x")], r"absolute path: '/etc/evil'"),
    ([("ds/up", None, "../../outside")], r"link member 'ds/up' -> '\.\./\.\./outside'"),
    ([("abs", None, "/etc/passwd")], r"link member 'abs' -> '/etc/passwd'"),
    # links that stay inside are refused too: the archives we download hold none, and chains of them escape
    ([("ds/a.txt", b"x"), ("ds/link", None, "a.txt")], r"link member 'ds/link' -> 'a\.txt'"),
    ([("ds/a.txt", b"x"), ("ds/hard", "hard", "ds/a.txt")], r"link member 'ds/hard' -> 'ds/a\.txt'"),
])
def test_tar_members_escaping_are_rejected(tmp_path, members, match):
    arc = make_tar(tmp_path / "evil.tar.gz", members)
    out = tmp_path / "deep" / "out"
    with pytest.raises(UnsafeArchiveError, match=match):
        extract_archive(arc, out)
    assert not (tmp_path / "deep" / "evil").exists() and not (tmp_path / "evil").exists()
    assert list(out.iterdir()) == []  # nothing extracted, staging removed


def test_chain_of_symlinks_cannot_escape_on_pythons_without_extraction_filters(tmp_path, monkeypatch):
    """Each link alone resolves inside the folder when read as text ('x' -> '.', 'y' -> 'x/x/x/../../..'), but once
    'x' exists on disk 'y' points three levels up. Pythons whose tarfile has no extraction filters (3.10 before
    3.10.12, 3.11 before 3.11.4, all allowed by requires-python) would then write 'y/escaped.txt' outside."""
    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    arc = make_tar(tmp_path / "chain.tar", [("x", None, "."), ("y", None, "x/x/x/../../.."),
                                            ("y/escaped.txt", b"outside")], "w")
    out = tmp_path / "a" / "b" / "out"
    with pytest.raises(UnsafeArchiveError, match=r"chain\.tar.*link member 'x' -> '\.'"):
        extract_archive(arc, out)
    assert not list(tmp_path.rglob("escaped.txt"))


def test_zip_symlink_members_are_refused(tmp_path):
    arc = tmp_path / "links.zip"
    with zipfile.ZipFile(arc, "w") as zf:
        zf.writestr("imgs/00000.png", b"png")
        info = zipfile.ZipInfo("imgs/link.png")
        info.external_attr = (0o120777 << 16)  # S_IFLNK: unzip would create a symlink
        zf.writestr(info, "../../../etc/passwd")
    with pytest.raises(UnsafeArchiveError, match=r"links\.zip.*link member 'imgs/link\.png'"):
        extract_archive(arc, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_zip_extract_and_zip_slip(tmp_path):
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("imgs/00000.png", b"png")
    assert extract_archive(good, tmp_path / "out") == [tmp_path / "out" / "imgs"]
    for name in ("../evil.txt", "x/../../evil.txt", "/abs.txt", "C:\\evil.txt"):
        bad = tmp_path / "bad.zip"
        with zipfile.ZipFile(bad, "w") as zf:
            zf.writestr("fine.txt", b"x")
            zf.writestr(zipfile.ZipInfo(name), b"evil")
        with pytest.raises(UnsafeArchiveError, match="bad.zip"):
            extract_archive(bad, tmp_path / "out2")
        assert not (tmp_path / "evil.txt").exists()
        assert not (tmp_path / "out2" / "fine.txt").exists()


def test_unsupported_archive(tmp_path):
    (tmp_path / "a.rar").write_bytes(b"x")
    with pytest.raises(ValueError, match="unsupported archive"):
        extract_archive(tmp_path / "a.rar", tmp_path / "out")


# ------------------------------------------------------------------------------------------------ registry


def test_registry_and_download_dataset(server, tmp_path):
    assert DATASETS["ljspeech"].url == "https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2"
    assert len(DATASETS["ljspeech"].sha256) == 64
    with pytest.raises(ValueError, match="official script"):
        download_dataset("ffhq-thumbnails128", tmp_path)
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'; valid: 'ljspeech'"):
        download_dataset("imagenet", tmp_path)
    buf = io.BytesIO()
    make_tar(buf, [("LJSpeech-1.1/metadata.csv", b"LJ001-0001|a|a\n")], "w:bz2")
    server.files["/LJSpeech-1.1.tar.bz2"] = buf.getvalue()
    sha = hashlib.sha256(buf.getvalue()).hexdigest()
    folder = download_dataset("ljspeech", tmp_path / "d", url=server.url("/LJSpeech-1.1.tar.bz2"), sha256=sha,
                              progress=False)
    assert folder == tmp_path / "d" / "LJSpeech-1.1" and (folder / "metadata.csv").exists()
    n_requests = len(server.ranges)
    assert download_dataset("ljspeech", tmp_path / "d", url=server.url("/nothing"), progress=False) == folder
    assert len(server.ranges) == n_requests  # already there: no request
