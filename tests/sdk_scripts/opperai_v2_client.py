"""What the opperai==1.7.2 platform scripts share: the client pointed at taskgate's /v2, a reply as
plain JSON, and the class and status of a refused call. Imported by the scripts beside it (a script
run as a file has its own folder on the import path)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from opperai import Opper, errors

URL = os.environ["TASKGATE_URL"]
opper = Opper(http_bearer=os.environ["OPPER_HTTP_BEARER"], server_url=f"{URL}/v2")


def plain(value: Any) -> Any:
    """A client's reply (pydantic models, lists of them, ...) as plain JSON values."""
    return json.loads(json.dumps(value, default=lambda o: o.model_dump() if hasattr(o, "model_dump") else str(o)))


def refused(call: Callable[[], Any]) -> dict[str, Any]:
    """The error class and HTTP status the client raised for `call`, or nulls if it did not refuse."""
    try:
        call()
    except errors.OpperError as exc:
        return {"class": type(exc).__name__, "status": getattr(exc, "status_code", None)}
    return {"class": None, "status": None}
