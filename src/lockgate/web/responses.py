"""The control plane's JSON response class.

FastAPI deprecated its ``ORJSONResponse``; this is the same thing kept in Lockgate: a
Starlette response rendered by orjson, which also takes NumPy values and non-string keys
(the data plane writes its own bytes and does not use it).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=_OPTS)
