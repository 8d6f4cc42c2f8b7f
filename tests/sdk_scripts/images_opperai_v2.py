"""opperai==1.7.2 calling an image model: the images come back in the call's `images`; prints one
JSON document. The URL and key come from TASKGATE_URL / OPPER_HTTP_BEARER."""

from __future__ import annotations

import json
import os

from opperai import Opper

URL = os.environ["TASKGATE_URL"]
opper = Opper(http_bearer=os.environ["OPPER_HTTP_BEARER"], server_url=f"{URL}/v2")


def main() -> None:
    result = opper.call(name="sdk-draw", instructions="Watercolour", input="a harbour at dawn",
                        model="openai/dall-e-3")
    print(json.dumps({"images": result.images, "message": result.message, "cost": result.cost,
                      "span_id": result.span_id}))


if __name__ == "__main__":
    main()
