"""opperai==1.7.2 with media input: a WAV and a PDF as `_opper_media_input`; prints one JSON document
with what the client parsed, and the error a model that cannot take audio gives.
The URL and key come from TASKGATE_URL / OPPER_HTTP_BEARER."""

from __future__ import annotations

import base64
import json
import os

from opperai import Opper, errors

URL = os.environ["TASKGATE_URL"]
opper = Opper(http_bearer=os.environ["OPPER_HTTP_BEARER"], server_url=f"{URL}/v2")
WAV = b"RIFF" + (36).to_bytes(4, "little") + b"WAVEfmt " + bytes(24)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def url(media_type: str, data: bytes) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def main() -> None:
    audio = opper.call(name="sdk-media-audio", instructions="Transcribe", model="openai/gpt-4o-audio-preview",
                       input={"_opper_media_input": url("audio/wav", WAV)})
    pdf = opper.call(name="sdk-media-pdf", instructions="Summarise", model="anthropic/claude-haiku-4-5",
                     input={"_opper_media_input": url("application/pdf", PDF), "focus": "totals"})
    try:
        opper.call(name="sdk-media-refused", model="openai/gpt-4o-mini",
                   input={"_opper_media_input": url("audio/wav", WAV)})
        refused = None
    except errors.APIError as exc:
        refused = {"status": exc.status_code, "body": exc.body}
    except errors.BadRequestError as exc:
        refused = {"status": 400, "body": str(exc.data)}
    print(json.dumps({"audio": audio.message, "pdf": pdf.message, "audio_span": audio.span_id, "refused": refused}))


if __name__ == "__main__":
    main()
