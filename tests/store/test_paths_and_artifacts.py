from __future__ import annotations

from pathlib import Path

import pytest

from lockgate.errors import IntegrityError, InvalidNameError, NotFoundError, UnsafePathError
from lockgate.store.artifacts import ArtifactStore, pack_dir, sha256_bytes, unpack_dir
from lockgate.store.paths import validate_name, validate_relative_path, validate_source


@pytest.mark.parametrize("name", ["a", "credit-risk", "m_1", "0abc", "x" * 64])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "A", "has space", "-lead", "x" * 65, "a/b", "a..b", "é"])
def test_invalid_names_name_the_rule(name: str) -> None:
    with pytest.raises(InvalidNameError) as exc:
        validate_name(name, "model")
    assert "model: expected 1-64 characters" in str(exc.value)
    assert repr(name) in str(exc.value)


@pytest.mark.parametrize(
    "path", ["../x", "a/../../b", "/etc/passwd", "C:/x", "a\\b", "a//b", "x\0"]
)
def test_relative_path_refuses_traversal(path: str) -> None:
    with pytest.raises(UnsafePathError):
        validate_relative_path(path)


@pytest.mark.parametrize(
    "uri",
    [
        "http://example.com/m.onnx",
        "ftp://h/x",
        "data:,abc",
        "s3://bucket/model",
        "file://otherhost/etc/passwd",
    ],
)
def test_source_refuses_schemes(uri: str) -> None:
    with pytest.raises(UnsafePathError):
        validate_source(uri)


def test_source_accepts_local_and_file_url(tmp_path: Path) -> None:
    f = tmp_path / "m.onnx"
    f.write_bytes(b"x")
    assert validate_source(str(f)) == f
    assert validate_source(f"file://{f}") == f
    with pytest.raises(UnsafePathError, match="no such file"):
        validate_source(str(tmp_path / "missing.onnx"))


def test_put_is_content_addressed_and_atomic(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "a"))
    sha = store.put_bytes(b"hello")
    assert sha == sha256_bytes(b"hello")
    assert store.put_bytes(b"hello") == sha
    blobs = list((tmp_path / "a").rglob("*"))
    assert not [p for p in blobs if ".tmp-" in p.name]
    assert store.get_bytes(sha) == b"hello"


def test_tampered_blob_is_refused(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "a"))
    sha = store.put_bytes(b"model bytes")
    blob = tmp_path / "a" / "sha256" / sha[:2] / sha
    blob.write_bytes(b"evil bytes")
    with pytest.raises(IntegrityError, match="version m/1"):
        store.get_bytes(sha, subject="version m/1")


def test_missing_blob_is_not_found(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "a"))
    with pytest.raises(NotFoundError):
        store.get_bytes("0" * 64)


def test_dir_pack_is_deterministic_and_round_trips(tmp_path: Path) -> None:
    src = tmp_path / "model"
    (src / "sub").mkdir(parents=True)
    (src / "MLmodel").write_text("flavors: {}\n")
    (src / "sub" / "w.bin").write_bytes(b"\x00\x01")
    a = pack_dir(src)
    (src / "MLmodel").touch()  # a new mtime must not change the bytes
    assert pack_dir(src) == a
    out = tmp_path / "out"
    out.mkdir()
    unpack_dir(a, out)
    assert (out / "sub" / "w.bin").read_bytes() == b"\x00\x01"


def test_unpack_refuses_traversal(tmp_path: Path) -> None:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../evil.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(UnsafePathError):
        unpack_dir(buf.getvalue(), tmp_path)
    assert not (tmp_path.parent / "evil.txt").exists()


def test_symlinks_are_refused_when_packing(tmp_path: Path) -> None:
    src = tmp_path / "model"
    src.mkdir()
    (src / "link").symlink_to("/etc/passwd")
    with pytest.raises(UnsafePathError, match="symbolic"):
        pack_dir(src)


def test_unexpected_artifact_url_scheme_is_refused() -> None:
    with pytest.raises(UnsafePathError, match="artifacts_url"):
        ArtifactStore("http://example.com/artifacts")
