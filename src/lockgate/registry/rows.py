"""Registry rows looked up inside a caller's session: one query each, one not-found error.

The registry, gates, rollouts and automatic rollbacks all resolve ``model/N`` to its
``VersionRow`` inside transactions of their own; they share this lookup so that a missing
version reads the same everywhere (``version not found: m/7``, a 404 on the API).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from lockgate.errors import NotFoundError
from lockgate.store.schema import VersionRow


def version_row(s: Session, model_id: int, model: str, number: int) -> VersionRow:
    """The row of version ``number`` of the model with id ``model_id`` (named ``model`` in
    the error); raises NotFoundError when there is none."""
    row = s.execute(
        select(VersionRow).where(VersionRow.model_id == model_id, VersionRow.version == number)
    ).scalar_one_or_none()
    if row is None:
        raise NotFoundError("version", f"{model}/{number}")
    return row
