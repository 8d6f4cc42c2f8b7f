"""Small media files of each kind, real enough that their first bytes say what they are, as data URLs."""

from __future__ import annotations

import base64

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(17)
JPEG = b"\xff\xd8\xff\xe0" + bytes(16)
WAV = b"RIFF" + (36).to_bytes(4, "little") + b"WAVEfmt " + bytes(24)
MP3 = b"ID3\x04\x00\x00" + bytes(20)
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
TEXT = b"Ticket 42: the printer is on fire."


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def data_url(media_type: str, data: bytes) -> str:
    return f"data:{media_type};base64,{b64(data)}"


PNG_URL = data_url("image/png", PNG)
WAV_URL = data_url("audio/wav", WAV)
MP3_URL = data_url("audio/mpeg", MP3)
PDF_URL = data_url("application/pdf", PDF)
TEXT_URL = data_url("text/plain", TEXT)
