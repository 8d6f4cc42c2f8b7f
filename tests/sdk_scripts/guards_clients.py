"""Runs inside the `openai` or the `opperai==2.1.1` virtualenv against `taskgate serve`; prints one
JSON result: guards as a user of each client asks for them.

Usage: python guards_clients.py '<json config>' with base_url, api_key, scenario, model. The openai
client sends the X-Opper-Guard-* headers with `extra_headers`; opperai 2.1.1's `call()` has no guard
argument, so its scenario posts the RunRequest through the client's own transport and reads
`meta.guards` the way `RunResponse.meta` exposes it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

REDACT_PII = {"X-Opper-Guard-Input": "pii", "X-Opper-Guard-Action": "redact"}


def openai_redact(cfg: dict[str, Any]) -> dict[str, Any]:
    from openai import OpenAI

    client = OpenAI(api_key=cfg["api_key"], base_url=cfg["base_url"], max_retries=0, timeout=30)
    messages = [{"role": "user", "content": "Write to jane.doe@example.com please."}]
    raw = client.chat.completions.with_raw_response.create(model=cfg["model"], messages=messages,
                                                           extra_headers=REDACT_PII)
    completion = raw.parse()
    streamed = "".join(chunk.choices[0].delta.content or ""
                       for chunk in client.chat.completions.create(model=cfg["model"], messages=messages, stream=True,
                                                                   extra_headers=REDACT_PII)
                       if chunk.choices)
    return {"content": completion.choices[0].message.content, "streamed": streamed,
            "findings": raw.headers.get("x-opper-guard-findings")}


def openai_block(cfg: dict[str, Any]) -> dict[str, Any]:
    import openai
    from openai import OpenAI

    client = OpenAI(api_key=cfg["api_key"], base_url=cfg["base_url"], max_retries=0, timeout=30)
    try:
        client.chat.completions.create(model=cfg["model"], extra_headers={"X-Opper-Guard-Input": "secrets",
                                                                          "X-Opper-Guard-Action": "block"},
                                       messages=[{"role": "user", "content": "my key is AKIAIOSFODNN7EXAMPLE"}])
    except openai.BadRequestError as exc:
        return {"error": type(exc).__name__, "status": exc.status_code, "body": exc.body}
    return {"error": None}


def opperai_meta_guards(cfg: dict[str, Any]) -> dict[str, Any]:
    from opperai import Opper

    opper = Opper(api_key=cfg["api_key"], base_url=cfg["base_url"])
    data = opper._client._post("/v3/call", {  # no guard argument in 2.1.1's call(): its own transport
        "name": cfg["name"], "input": "Write to jane.doe@example.com", "model": cfg["model"],
        "guard": {"input": [{"type": "pii", "action": "redact"}]}})
    return {"data": data["data"], "guards": data["meta"]["guards"]}


SCENARIOS = {f.__name__: f for f in (openai_redact, openai_block, opperai_meta_guards)}


def main() -> None:
    cfg = json.loads(sys.argv[1])
    print(json.dumps(SCENARIOS[cfg["scenario"]](cfg)))


if __name__ == "__main__":
    main()
