"""The openai client with media content parts through Taskgate's compat endpoint: input_audio and a
PDF file part; prints one JSON document. The URL and key come from OPENAI_BASE_URL / OPENAI_API_KEY."""

from __future__ import annotations

import base64
import json

import openai
from openai import OpenAI

client = OpenAI()
WAV = b"RIFF" + (36).to_bytes(4, "little") + b"WAVEfmt " + bytes(24)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def main() -> None:
    sound = {"type": "input_audio", "input_audio": {"data": b64(WAV), "format": "wav"}}
    audio = client.chat.completions.create(model="openai/gpt-4o-audio-preview", messages=[
        {"role": "user", "content": [{"type": "text", "text": "Transcribe"}, sound]}])
    pdf = client.chat.completions.create(model="anthropic/claude-haiku-4-5", messages=[{"role": "user", "content": [
        {"type": "text", "text": "Summarise"},
        {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{b64(PDF)}", "filename": "a.pdf"}}]}])
    try:
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "@@@", "format": "wav"}}]}])
        refused = None
    except openai.BadRequestError as exc:
        refused = {"status": exc.status_code, "body": str(exc)}
    print(json.dumps({"audio": audio.choices[0].message.content, "pdf": pdf.choices[0].message.content,
                      "refused": refused}))


if __name__ == "__main__":
    main()
