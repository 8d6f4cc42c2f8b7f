"""opperai==2.1.1 with media input: a PNG as `_opper_media_input` to Anthropic, and the error an
unsupported type gives; prints one JSON document. The URL and key come from OPPER_BASE_URL / OPPER_API_KEY."""

from __future__ import annotations

import base64
import json
import os

from opperai import ApiError, Opper

opper = Opper(api_key=os.environ["OPPER_API_KEY"], base_url=os.environ["OPPER_BASE_URL"])
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(17)


def main() -> None:
    image = f"data:image/png;base64,{base64.b64encode(PNG).decode()}"
    seen = opper.call("sdk-media-v3", input={"_opper_media_input": image, "question": "what is it?"},
                      model="anthropic/claude-haiku-4-5")
    try:
        opper.call("sdk-media-v3-bad", input={"_opper_media_input": "data:image/svg+xml;base64,PHN2Zy8+"},
                   model="anthropic/claude-haiku-4-5")
        refused = None
    except ApiError as exc:
        refused = {"status": exc.status, "body": str(exc)}
    print(json.dumps({"data": seen.data, "refused": refused}))


if __name__ == "__main__":
    main()
