"""What a model can do, and so what its provider is sent: the one lookup the catalogue, the engine
and the adapters share.

`genai-prices` (the maintained price table) knows context windows, prices and deprecation, but not
capabilities, so those come from the small table below, one rule per model family, matched by the
longest model-id prefix within the provider's family (its price provider: Azure serves OpenAI's
models). Price hints in genai-prices add what they reveal (an audio input price means audio input).

A model no rule knows is `known=False`: nothing is refused on its behalf (its vendor decides), and
structured output asks for OpenAI's strict mode when the schema fits, as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

CAPABILITIES = ("tools", "vision", "audio", "files", "json_schema", "reasoning", "embeddings", "image_generation")
MEDIA_CAPABILITY = {"image": "vision", "audio": "audio", "file": "files"}  # media kind -> the capability it needs


class StructuredMode(Enum):
    """How an OpenAI-compatible vendor is asked for JSON that fits a schema."""

    STRICT = "strict"  # `json_schema`, marked strict when the schema fits OpenAI's subset
    JSON_SCHEMA = "json_schema"  # `json_schema`, never strict (the vendor refuses `strict: true`)
    JSON_OBJECT = "json_object"  # any JSON object; the schema is in the prompt and validated by us
    PROMPT = "prompt"  # no response_format at all: the vendor refuses it


@dataclass(frozen=True, slots=True)
class ImageWire:
    """How an images-API model is asked for inline images of a format."""

    inline_option: str | None = "b64_json"  # the `response_format` that asks for base64; None: always inline
    formats: tuple[str, ...] = ("png",)  # the `output_format`s it makes, its default first


@dataclass(frozen=True, slots=True)
class TraitRule:
    family: str  # a price provider id ("openai", "anthropic", ...) or "local"
    prefix: str  # matches model ids starting with it; the longest match wins
    capabilities: frozenset[str]
    structured: StructuredMode = StructuredMode.STRICT
    image_price: float | None = None  # USD per generated image, for models billed per image
    listed: tuple[str, ...] = ()  # model ids listed even where the price table has none
    images: ImageWire | None = None  # how an image model is asked for its images


@dataclass(frozen=True, slots=True)
class ModelTraits:
    capabilities: frozenset[str]
    structured: StructuredMode
    known: bool
    image_price: float | None = None
    images: ImageWire | None = None

    def refuses(self, capability: str) -> bool:
        """True only when the model is known not to have `capability`."""
        return self.known and capability not in self.capabilities


def _rule(family: str, prefix: str, *capabilities: str, structured: StructuredMode = StructuredMode.STRICT,
          image_price: float | None = None, listed: tuple[str, ...] = (), images: ImageWire | None = None) -> TraitRule:
    unknown = set(capabilities) - set(CAPABILITIES)
    if unknown:
        raise ValueError(f"unknown capabilities {sorted(unknown)}")
    if ("image_generation" in capabilities) != (images is not None):
        raise ValueError("an image generation rule says how its images are asked for, and only it")
    return TraitRule(family, prefix, frozenset(capabilities), structured, image_price, listed, images)


_DALL_E = ImageWire()
_GPT_IMAGE = ImageWire(inline_option=None, formats=("png", "jpeg", "webp"))


_CHAT = ("tools", "json_schema")
_MULTIMODAL = (*_CHAT, "vision", "files")
RULES: tuple[TraitRule, ...] = (
    # OpenAI (and Azure, which serves its models)
    _rule("openai", "gpt-5", *_MULTIMODAL, "reasoning"),
    _rule("openai", "gpt-4.1", *_MULTIMODAL),
    _rule("openai", "gpt-4o", *_MULTIMODAL),
    _rule("openai", "gpt-4o-audio", "tools", "audio", structured=StructuredMode.JSON_OBJECT),
    _rule("openai", "gpt-4o-mini-audio", "tools", "audio", structured=StructuredMode.JSON_OBJECT),
    _rule("openai", "gpt-4o-search", "json_schema"),
    _rule("openai", "gpt-4o-mini-search", "json_schema"),
    # speech and realtime models share the family's names but are not chat models: they take nothing here
    _rule("openai", "gpt-4o-realtime", structured=StructuredMode.PROMPT),
    _rule("openai", "gpt-4o-mini-realtime", structured=StructuredMode.PROMPT),
    _rule("openai", "gpt-4o-transcribe", structured=StructuredMode.PROMPT),
    _rule("openai", "gpt-4o-mini-transcribe", structured=StructuredMode.PROMPT),
    _rule("openai", "gpt-4o-mini-tts", structured=StructuredMode.PROMPT),
    _rule("openai", "gpt-4.5", *_MULTIMODAL),
    _rule("openai", "gpt-4-turbo", "tools", "vision", structured=StructuredMode.JSON_OBJECT),
    _rule("openai", "gpt-4-vision", "vision", structured=StructuredMode.PROMPT),
    _rule("openai", "gpt-4", "tools", structured=StructuredMode.PROMPT),
    _rule("openai", "gpt-3.5-turbo", "tools", structured=StructuredMode.JSON_OBJECT),
    _rule("openai", "gpt-3.5-turbo-instruct", structured=StructuredMode.PROMPT),  # a completions model
    _rule("openai", "o1", *_MULTIMODAL, "reasoning"),
    _rule("openai", "o3", *_MULTIMODAL, "reasoning"),
    _rule("openai", "o3-mini", *_CHAT, "reasoning"),
    _rule("openai", "o4-mini", *_MULTIMODAL, "reasoning"),
    _rule("openai", "text-embedding", "embeddings", structured=StructuredMode.PROMPT),
    _rule("openai", "gpt-image", "image_generation", structured=StructuredMode.PROMPT, images=_GPT_IMAGE),
    _rule("openai", "dall-e-3", "image_generation", structured=StructuredMode.PROMPT, image_price=0.04,
          listed=("dall-e-3",), images=_DALL_E),
    _rule("openai", "dall-e-2", "image_generation", structured=StructuredMode.PROMPT, image_price=0.02,
          listed=("dall-e-2",), images=_DALL_E),
    # Anthropic: structured output is its adapter's forced tool, so the mode is not consulted
    _rule("anthropic", "claude-", *_MULTIMODAL),
    _rule("anthropic", "claude-3-7", *_MULTIMODAL, "reasoning"),
    _rule("anthropic", "claude-sonnet-4", *_MULTIMODAL, "reasoning"),
    _rule("anthropic", "claude-opus-4", *_MULTIMODAL, "reasoning"),
    _rule("anthropic", "claude-haiku-4", *_MULTIMODAL, "reasoning"),
    # OpenAI-compatible vendors with the images API
    _rule("together", "black-forest-labs/FLUX", "image_generation", structured=StructuredMode.PROMPT,
          images=_DALL_E),
    # Vendors whose APIs take only JSON mode
    _rule("deepseek", "deepseek-chat", "tools", structured=StructuredMode.JSON_OBJECT),
    _rule("deepseek", "deepseek-reasoner", "reasoning", structured=StructuredMode.JSON_OBJECT),
    _rule("mistral", "mistral-embed", "embeddings", structured=StructuredMode.PROMPT),
    _rule("mistral", "pixtral", *_CHAT, "vision"),
    # Models served in-process: text in, grammar-constrained JSON out
    _rule("local", "", "json_schema"),
)
_BY_FAMILY: dict[str, list[TraitRule]] = {}
for _entry in sorted(RULES, key=lambda rule: len(rule.prefix), reverse=True):
    _BY_FAMILY.setdefault(_entry.family, []).append(_entry)

TRAITS_KEPT = 4096  # model names come from callers: a bounded number of answers is kept
SAME_MODELS = {"azure": "openai"}  # price providers that serve another family's models under its names
UNKNOWN = ModelTraits(frozenset(), StructuredMode.STRICT, known=False)


def rule_for(family: str | None, model: str) -> TraitRule | None:
    """The most specific rule for `model` in `family`, or None."""
    family = SAME_MODELS.get(family or "", family or "")
    for rule in _BY_FAMILY.get(family, ()):
        if model.startswith(rule.prefix):
            return rule
    return None


@lru_cache(maxsize=TRAITS_KEPT)
def model_traits(family: str | None, model: str) -> ModelTraits:
    """What `model` of the provider family `family` (its price provider, or "local") can do; asked
    on every call, so the answers for the latest few thousand names are kept."""
    rule = rule_for(family, model)
    if rule is None:
        return UNKNOWN
    return ModelTraits(rule.capabilities, rule.structured, known=True, image_price=rule.image_price,
                       images=rule.images)
