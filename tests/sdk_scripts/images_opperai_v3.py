"""opperai==2.1.1's `generate_image` against an image model; saves the image and prints one JSON
document. The URL and key come from OPPER_BASE_URL / OPPER_API_KEY."""

from __future__ import annotations

import json
import os
import sys

from opperai import Opper

opper = Opper(api_key=os.environ["OPPER_API_KEY"], base_url=os.environ["OPPER_BASE_URL"])


def main() -> None:
    result = opper.generate_image(prompt="a paper crane", model="openai/gpt-image-1", size="1024x1024",
                                  mime_type="image/jpeg")
    saved = result.save(os.path.join(sys.argv[1], "crane"))
    with open(saved, "rb") as handle:
        size = len(handle.read())
    print(json.dumps({"saved": os.path.basename(saved), "bytes": size, "meta": result.meta}))


if __name__ == "__main__":
    main()
