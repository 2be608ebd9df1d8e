"""Content-addressed artifact store over an fsspec URL (a local folder by default).

A blob lives at ``sha256/<aa>/<full hash>``; it is written to a temporary name and renamed,
so a reader never sees half a blob, and the same bytes are stored once. Folders (an MLflow
model directory, a model with a sidecar) are packed into a deterministic tar first. Every
read hashes the bytes again and refuses them when they no longer match.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tempfile
import uuid
from pathlib import Path
from typing import Any

import fsspec

from lockgate.errors import IntegrityError, InvalidInputError, NotFoundError, UnsafePathError
from lockgate.store.paths import validate_artifact_url, validate_relative_path

_CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def pack_dir(directory: Path) -> bytes:
    """A deterministic tar of ``directory``: sorted names, zero times and owners, no links."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(directory.rglob("*")):
            rel = path.relative_to(directory).as_posix()
            validate_relative_path(rel, "artifact member")
            if path.is_symlink():
                raise UnsafePathError.for_field("artifact member", "no symbolic links", rel)
            info = tarfile.TarInfo(rel)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if path.is_dir():
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.size = path.stat().st_size
                info.mode = 0o644
                with open(path, "rb") as f:
                    tar.addfile(info, f)
    return buf.getvalue()


def unpack_dir(data: bytes, destination: Path) -> None:
    """Unpack a tar made by :func:`pack_dir`, refusing links, devices and traversal."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member in tar.getmembers():
            validate_relative_path(member.name, "artifact member")
            if not (member.isfile() or member.isdir()):
                raise UnsafePathError.for_field("artifact member", "files and folders", member.name)
        tar.extractall(destination, filter="data")


class ArtifactStore:
    def __init__(self, url: str) -> None:
        self.url = validate_artifact_url(url)
        self.fs, self.root = fsspec.core.url_to_fs(url)
        self.root = self.root.rstrip("/")
        self.fs.makedirs(self.root, exist_ok=True)

    def _path(self, sha: str) -> str:
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise InvalidInputError.for_field("sha256", "64 lowercase hex digits", sha)
        return f"{self.root}/sha256/{sha[:2]}/{sha}"

    def exists(self, sha: str) -> bool:
        return bool(self.fs.exists(self._path(sha)))

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` and return its sha256 (idempotent)."""
        sha = sha256_bytes(data)
        target = self._path(sha)
        if self.fs.exists(target):
            return sha
        self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        tmp = f"{target}.tmp-{uuid.uuid4().hex}"
        if self._is_local:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        else:
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, target)
        return sha

    def put_path(self, path: Path) -> tuple[str, int, str]:
        """Store a file or a folder; return ``(sha256, size, kind)`` with kind file|dir."""
        if path.is_dir():
            data = pack_dir(path)
            kind = "dir"
        elif path.is_file():
            data = path.read_bytes()
            kind = "file"
        else:
            raise InvalidInputError.for_field("path", "a file or folder", str(path))
        return self.put_bytes(data), len(data), kind

    def get_bytes(self, sha: str, *, subject: str | None = None) -> bytes:
        """The blob's bytes, verified against ``sha`` (IntegrityError when they differ)."""
        path = self._path(sha)
        try:
            data: bytes = self.fs.cat_file(path)
        except FileNotFoundError:
            raise NotFoundError("artifact", subject or sha) from None
        actual = sha256_bytes(data)
        if actual != sha:
            raise IntegrityError(
                f"artifact of {subject or 'blob'} failed its integrity check: stored bytes hash "
                f"to {actual[:12]}..., expected {sha[:12]}...; refusing to load",
                subject=subject,
                expected=sha,
                actual=actual,
            )
        return data

    def materialize(
        self, sha: str, kind: str, name: str, *, cache_dir: Path, subject: str | None = None
    ) -> Path:
        """Verify the blob and write it into a fresh folder under ``cache_dir``; return the
        path of the file (named ``name``) or of the unpacked folder."""
        data = self.get_bytes(sha, subject=subject)
        cache_dir.mkdir(parents=True, exist_ok=True)
        dest = Path(tempfile.mkdtemp(prefix=f"{sha[:12]}-", dir=cache_dir))
        safe = validate_relative_path(name, "artifact name")
        if len(safe.parts) != 1:
            raise UnsafePathError.for_field("artifact name", "a plain file name", name)
        target = dest / safe.name
        if kind == "dir":
            target.mkdir()
            unpack_dir(data, target)
        else:
            target.write_bytes(data)
        return target

    @property
    def _is_local(self) -> bool:
        protocol: Any = self.fs.protocol
        protocols = (protocol,) if isinstance(protocol, str) else tuple(protocol)
        return "file" in protocols or "local" in protocols
