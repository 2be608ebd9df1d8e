"""Lockgate: take trained models from prototype to production and keep them healthy there."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "connect"]

if TYPE_CHECKING:
    from lockgate.client import connect


def __getattr__(name: str) -> Any:
    # Keep `import lockgate` cheap: the SDK loads SQLAlchemy and friends only when used.
    if name == "connect":
        from lockgate.client import connect

        return connect
    raise AttributeError(f"module 'lockgate' has no attribute {name!r}")
