"""opperai==2.1.1 `generations.list|get|delete` against Taskgate; prints one JSON document with what
the client parsed. The URL and key come from OPPER_BASE_URL / OPPER_API_KEY."""

from __future__ import annotations

import dataclasses
import json
import os

from opperai import ApiError, Opper

opper = Opper(api_key=os.environ["OPPER_API_KEY"], base_url=os.environ["OPPER_BASE_URL"])


def main() -> None:
    opper.call("sdk-generations", input="What is 2+2?", model="openai/gpt-4o-mini")
    listed = opper.generations.list(page=1, page_size=10)
    searched = opper.generations.list(query="gpt-4o-mini")
    first = listed.data[0]
    got = opper.generations.get(first["id"])
    deleted = opper.generations.delete(first["id"])
    try:
        opper.generations.get(first["id"])
        missing = None
    except ApiError as exc:
        missing = exc.status
    print(json.dumps({"meta": dataclasses.asdict(listed.meta), "count": len(listed.data),
                      "searched": len(searched.data), "got": got, "deleted": deleted, "missing": missing}))


if __name__ == "__main__":
    main()
