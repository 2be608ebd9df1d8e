"""Validation of names, relative paths and source URIs: no traversal, no scheme tricks."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from lockgate.errors import InvalidNameError, UnsafePathError

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
NAME_RULE = (
    "1-64 characters: lowercase letters, digits, '-' and '_', starting with a letter or digit"
)

#: URL schemes accepted for the artifact store (fsspec protocols)
ARTIFACT_SCHEMES = frozenset({"", "file", "memory", "s3", "gs", "gcs", "az", "abfs"})
#: schemes accepted for a model source given at registration
SOURCE_SCHEMES = frozenset({"", "file"})


def validate_name(value: object, field: str = "name") -> str:
    """A model, alias or endpoint name; raises InvalidNameError naming the rule."""
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise InvalidNameError(
            f"{field}: expected {NAME_RULE}, got {value!r}",
            field=field,
            expected=NAME_RULE,
            got=value if isinstance(value, str) else repr(value),
        )
    return value


def validate_relative_path(value: str, field: str = "path") -> PurePosixPath:
    """A path inside an artifact: relative, no ``..``, no drive, no backslash, no NUL."""
    bad = (
        not value
        or "\x00" in value
        or "\\" in value
        or value.startswith("/")
        or re.match(r"^[A-Za-z]:", value) is not None
    )
    path = PurePosixPath(value)
    if bad or any(part in ("..", ".", "") for part in value.split("/")) or path.is_absolute():
        raise UnsafePathError(
            f"{field}: expected a relative path without '..', got {value!r}",
            field=field,
            expected="a relative path without '..'",
            got=value,
        )
    return path


def validate_source(value: str | Path, field: str = "path") -> Path:
    """A model or data source given by a user: a local path or a file:// URL. Other schemes
    (http, ftp, data, s3 ...) are refused here; the file must exist."""
    if isinstance(value, Path):
        path = value
    else:
        if "\x00" in value:
            raise UnsafePathError.for_field(field, "a path without NUL bytes", value)
        parsed = urlparse(value)
        scheme = parsed.scheme.lower()
        if len(scheme) == 1:  # a Windows drive letter, not a scheme
            scheme = ""
        if scheme not in SOURCE_SCHEMES:
            raise UnsafePathError(
                f"{field}: expected a local path or file:// URL, got scheme {scheme!r}",
                field=field,
                expected="a local path or file:// URL",
                got=value,
            )
        if scheme == "file":
            if parsed.netloc not in ("", "localhost"):
                raise UnsafePathError.for_field(field, "a file:// URL on this machine", value)
            path = Path(parsed.path)
        else:
            path = Path(value)
    path = path.expanduser()
    if not path.exists():
        raise UnsafePathError(
            f"{field}: no such file or folder: {str(path)!r}",
            field=field,
            expected="an existing file or folder",
            got=str(path),
        )
    return path


def validate_artifact_url(url: str) -> str:
    scheme = urlparse(url).scheme.lower()
    if len(scheme) == 1:
        scheme = ""
    if scheme not in ARTIFACT_SCHEMES:
        raise UnsafePathError(
            f"artifacts_url: expected a folder or one of "
            f"{', '.join(sorted(s for s in ARTIFACT_SCHEMES if s))}:// URLs, got {scheme}://",
            field="artifacts_url",
            expected=sorted(ARTIFACT_SCHEMES),
            got=url,
        )
    return url
