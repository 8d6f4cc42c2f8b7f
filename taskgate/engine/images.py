"""Image generation: what a call to an image model asks its images API, and what it answers.

A model whose traits say `image_generation` (gpt-image-1, dall-e-3, FLUX on Together, ...) is asked
through its provider's images endpoint, not chat. The prompt is the input: a string, or an object
with `description` (opperai 2.x's `generate_image`) or `prompt`, after the instructions when the
caller gave any. The object may also say `size`, `quality`, `style`, `n` and `mime_type`; anything
else is a 400, so no option is dropped unseen. The answer is `{image, mime_type}` (2.1.1's image
output schema), with every image in `images` when more than one was asked for; spans keep images
by digest.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from taskgate.engine.task import DEFAULT_INSTRUCTIONS, Task
from taskgate.errors import BadRequestError
from taskgate.providers.base import GeneratedImage, ImageRequest
from taskgate.providers.model_traits import ImageWire

PROMPT_KEYS = ("description", "prompt")
OPTION_KEYS = ("size", "quality", "style", "n")
MIME_KEY = "mime_type"
MAX_IMAGES = 10  # per call: what the images APIs allow at most


def image_request(task: Task, model: str, wire: ImageWire) -> ImageRequest:
    """The images API request for `task` on `model`; a 400 for an input it cannot be."""
    options: dict[str, Any] = dict(task.options)
    value = task.input
    if isinstance(value, dict):
        unknown = sorted(set(value) - {*PROMPT_KEYS, *OPTION_KEYS, MIME_KEY})
        if unknown:
            raise BadRequestError(f"input key '{unknown[0]}' is not an image generation option; image models take "
                                  f"{', '.join((*PROMPT_KEYS, *OPTION_KEYS, MIME_KEY))}")
        prompt = next((value[key] for key in PROMPT_KEYS if key in value), None)
        options.update({key: value[key] for key in OPTION_KEYS if key in value})
        mime_type = value.get(MIME_KEY, "image/png")
    else:
        prompt, mime_type = value, "image/png"
    if not isinstance(prompt, str) or not prompt.strip():
        raise BadRequestError("an image model needs a prompt: the input as a string, or input.description")
    n = options.get("n", 1)
    if isinstance(n, float) and n.is_integer():
        n = options["n"] = int(n)  # 2.1.1 types n as a number
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_IMAGES:
        raise BadRequestError(f"n must be a whole number from 1 to {MAX_IMAGES}, got {n!r}")
    if "n" not in options:
        options["n"] = 1
    options.update(_format_options(mime_type, model, wire))
    if task.instructions and task.instructions != DEFAULT_INSTRUCTIONS:
        prompt = f"{task.instructions}\n\n{prompt}"
    return ImageRequest(model=model, prompt=prompt, options=options)


def _format_options(mime_type: Any, model: str, wire: ImageWire) -> dict[str, Any]:
    image_format = mime_type.removeprefix("image/") if isinstance(mime_type, str) else None
    if image_format not in wire.formats:
        raise BadRequestError(f"model '{model}' makes {', '.join('image/' + f for f in wire.formats)} images, "
                              f"not {mime_type!r}")
    options: dict[str, Any] = {}
    if wire.inline_option is not None:
        options["response_format"] = wire.inline_option
    if image_format != wire.formats[0]:
        options["output_format"] = image_format
    return options


def mime_type_of(request: ImageRequest) -> str:
    return f"image/{request.options.get('output_format', 'png')}"


def image_payload(images: list[GeneratedImage], mime_type: str) -> dict[str, Any]:
    """The call's answer: the first image as `{image, mime_type}`, and all of them when there are more."""
    shown = [{"image": image.b64 if image.b64 is not None else image.url, "mime_type": mime_type}
             for image in images]
    payload: dict[str, Any] = dict(shown[0])
    if len(shown) > 1:
        payload["images"] = shown
    return payload


def image_summary(images: list[GeneratedImage], mime_type: str) -> dict[str, Any]:
    """What a span keeps of the images: type, size and sha256 of each (or its link), never its base64."""
    kept = []
    for image in images:
        entry: dict[str, Any] = {"media_type": mime_type}
        if image.b64 is not None:
            try:
                data = base64.b64decode(image.b64, validate=True)
            except (binascii.Error, ValueError):
                data = image.b64.encode()
            entry.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
        else:
            entry["url"] = image.url
        if image.revised_prompt:
            entry["revised_prompt"] = image.revised_prompt
        kept.append(entry)
    return {"images": kept}
