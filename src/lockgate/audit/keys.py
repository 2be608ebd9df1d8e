"""The audit key: the secret that signs event-chain checkpoints and export manifests.

It comes from ``LOCKGATE_AUDIT_KEY`` when set (at least 16 characters; set it on every server
that shares a PostgreSQL database), else from ``<home>/audit.key``: 32 random bytes as hex,
created with mode 0600 the first time something is signed. A key file that other users can
read is refused. The key is never logged, printed or stored anywhere else; checkpoints carry
only its *key id* (a hash of it), so a verification with the wrong key says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from lockgate.errors import InvalidInputError

if TYPE_CHECKING:
    from lockgate.settings import Settings

KEY_FILE = "audit.key"
MIN_KEY_CHARS = 16
_KEY_BYTES = 32


def key_path(settings: Settings) -> Path:
    return settings.home / KEY_FILE


def audit_key(settings: Settings, *, create: bool) -> bytes | None:
    """The workspace's audit key; None when there is none and ``create`` is False."""
    if settings.audit_key is not None:
        value = settings.audit_key.get_secret_value()
        if len(value) < MIN_KEY_CHARS:
            raise InvalidInputError.for_field(
                "LOCKGATE_AUDIT_KEY",
                f"a secret of at least {MIN_KEY_CHARS} characters",
                f"{len(value)} characters",
            )
        return value.encode()
    path = key_path(settings)
    if path.exists():
        return _read_key_file(path)
    if not create:
        return None
    return _create_key_file(path)


def _read_key_file(path: Path) -> bytes:
    if os.name == "posix":
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise InvalidInputError(
                f"audit key file {path} can be read by other users (mode {mode:04o}); "
                f"run: chmod 600 {path}",
                field="audit key file",
                expected="mode 0600",
                got=f"{mode:04o}",
            )
    text = path.read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < MIN_KEY_CHARS:
        raise InvalidInputError(
            f"audit key file {path} does not hold a hex key of at least {MIN_KEY_CHARS} bytes",
            field="audit key file",
            expected="hex digits",
        )
    return key


def _create_key_file(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(_KEY_BYTES)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(key.hex() + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # fails if another process created the key first: use theirs
        except FileExistsError:
            return _read_key_file(path)
        except OSError:  # a file system without hard links: exclusive create in place
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return _read_key_file(path)
            with os.fdopen(fd, "w") as f:
                f.write(key.hex() + "\n")
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return key


def key_id(key: bytes) -> str:
    """A public fingerprint of a key (16 hex digits); says which key signed, not the key."""
    return hashlib.sha256(b"lockgate.audit.key-id\n" + key).hexdigest()[:16]


def sign(key: bytes, purpose: str, body: bytes) -> str:
    """HMAC-SHA256 of ``body``, bound to ``purpose`` so one signature cannot stand in for
    another kind of document."""
    return hmac.new(key, purpose.encode() + b"\n" + body, hashlib.sha256).hexdigest()


def signature_ok(key: bytes, purpose: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(key, purpose, body), signature)
