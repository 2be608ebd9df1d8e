"""Value objects the registry hands out. Plain, immutable, JSON-ready."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lockgate.errors import InvalidInputError
from lockgate.registry.signature import Signature
from lockgate.store.paths import validate_name


@dataclass(frozen=True)
class ModelInfo:
    name: str
    description: str
    created_at: datetime
    created_by: str
    latest_version: int | None
    aliases: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "latest_version": self.latest_version,
            "aliases": dict(self.aliases),
        }


@dataclass(frozen=True)
class ModelVersion:
    model: str
    version: int
    flavor: str
    artifact_sha256: str
    artifact_size: int
    artifact_kind: str
    artifact_name: str
    signature: Signature
    lineage: dict[str, Any]
    metrics: dict[str, Any]
    params: dict[str, Any]
    tags: dict[str, Any]
    profile_sha256: str | None
    profile_summary: dict[str, Any] | None
    trusted_pickle: bool
    description: str
    created_at: datetime
    created_by: str
    aliases: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.model}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "flavor": self.flavor,
            "artifact": {
                "sha256": self.artifact_sha256,
                "size": self.artifact_size,
                "kind": self.artifact_kind,
                "name": self.artifact_name,
            },
            "signature": self.signature.to_dict(),
            "lineage": self.lineage,
            "metrics": self.metrics,
            "params": self.params,
            "tags": self.tags,
            "reference_profile": (
                {"sha256": self.profile_sha256, "summary": self.profile_summary}
                if self.profile_sha256
                else None
            ),
            "trusted_pickle": self.trusted_pickle,
            "description": self.description,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "aliases": list(self.aliases),
        }


@dataclass(frozen=True)
class AliasMove:
    model: str
    alias: str
    action: str  # set | move | delete
    from_version: int | None
    to_version: int | None
    at: datetime
    actor: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "alias": self.alias,
            "action": self.action,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "reason": self.reason,
        }


_REF_RE = re.compile(r"^(?P<name>[^/@]+)(?:/(?P<version>[^/@]+)|@(?P<alias>[^/@]+))?$")


@dataclass(frozen=True)
class VersionRef:
    """``name`` (latest), ``name/3`` or ``name@champion``."""

    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, ref: str) -> VersionRef:
        m = _REF_RE.fullmatch(ref.strip()) if isinstance(ref, str) else None
        if not m:
            raise InvalidInputError.for_field("ref", "NAME, NAME/VERSION or NAME@ALIAS", ref)
        name = validate_name(m["name"], "model")
        if m["version"] is not None:
            if not m["version"].isdigit() or int(m["version"]) < 1:
                raise InvalidInputError.for_field("version", "a positive integer", m["version"])
            return cls(name, version=int(m["version"]))
        if m["alias"] is not None:
            return cls(name, alias=validate_name(m["alias"], "alias"))
        return cls(name)

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}/{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name
