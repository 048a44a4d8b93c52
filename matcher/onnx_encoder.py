"""A sentence-transformers model run as int8 ONNX: tokenizer, ONNX Runtime, mean pooling.

This is what ``SentenceTransformer.encode`` does for a mean-pooled model, in
a few lines and without torch: the model's own fast tokenizer
(``tokenizer.json``, truncated at the model's ``max_seq_length``), one ONNX
Runtime session over the quantized transformer (:mod:`matcher.quantize`), the
mean of the token vectors under the attention mask, and L2 normalisation.
Writing it here, rather than using ``sentence-transformers[onnx]``, avoids
optimum, whose transformers pin can pull sentence-transformers back a major
version.

Batches are sorted by length and cut into small groups before they reach the
model: padding a short text to the longest one in a batch of 64 wasted a third
of the time, and groups of 16 kept the activations in cache (docs/performance.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .embedding import normalise
from .errors import ConfigError

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: Texts per ONNX Runtime call in a batch: measured best among 1 to 64 on two cores.
GROUP_SIZE = 16
#: sentence-transformers' default when a model folder does not say.
DEFAULT_MAX_SEQ_LENGTH = 256


def session_options(threads: int) -> Any:
    """ONNX Runtime options for ``threads`` cores, sharing the machine politely.

    One intra-op pool of ``threads`` (the worker's thread budget), no inter-op
    pool, and pool threads that sleep rather than spin between calls, so a
    worker idling between requests leaves its core to the others.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def read_model_settings(location: Path) -> int:
    """Check the model is mean-pooled and return its ``max_seq_length``.

    Raises:
        ConfigError: the folder lacks a fast tokenizer or pools other than by mean,
            which this encoder does not reproduce.
    """
    if not (location / "tokenizer.json").is_file():
        raise ConfigError(f"model in {location} has no tokenizer.json; use its ':full' runtime")
    pooling: dict[str, Any] = {"pooling_mode_mean_tokens": True}
    modules_path = location / "modules.json"
    if modules_path.is_file():
        for module in json.loads(modules_path.read_text(encoding="utf-8")):
            if str(module.get("type", "")).endswith("Pooling"):
                config = location / str(module.get("path", "")) / "config.json"
                if config.is_file():
                    pooling = json.loads(config.read_text(encoding="utf-8"))
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v is True}
    if modes != {"pooling_mode_mean_tokens"}:
        raise ConfigError(
            f"model in {location} pools by {sorted(modes)}; the int8 runtime does mean "
            "pooling only, so use its ':full' runtime"
        )
    settings_path = location / "sentence_bert_config.json"
    if settings_path.is_file():
        settings = json.loads(settings_path.read_text(encoding="utf-8"))
        return int(settings.get("max_seq_length") or DEFAULT_MAX_SEQ_LENGTH)
    return DEFAULT_MAX_SEQ_LENGTH


class OnnxEncoder:
    """A mean-pooled sentence-transformers model on ONNX Runtime.

    Args:
        location: the sentence-transformers model folder (tokenizer and settings).
        model_path: the ONNX model to run (the int8 export of ``location``).
        model_id: the identity to record in the index manifest.
        threads: ONNX Runtime's intra-op threads.
        group_size: texts per ONNX Runtime call.
    """

    def __init__(
        self,
        location: str | Path,
        model_path: str | Path,
        model_id: str,
        *,
        threads: int = 1,
        group_size: int = GROUP_SIZE,
    ) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        location = Path(location)
        max_length = read_model_settings(location)
        self._tokenizer = Tokenizer.from_file(str(location / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=max_length)
        padding = self._tokenizer.padding or {}
        # Pad by hand, per group, to the group's longest text (tokenizer.json may
        # ask for a fixed length), so each text is tokenized once.
        self._pad_id = int(padding.get("pad_id", 0))
        self._tokenizer.no_padding()
        try:
            self._session = onnxruntime.InferenceSession(
                str(model_path), session_options(threads), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ConfigError(f"cannot load the ONNX model {model_path} ({exc})") from exc
        self._inputs = {node.name for node in self._session.get_inputs()}
        self._dimension = int(self._session.get_outputs()[0].shape[-1])
        self._model_id = model_id
        self.threads = threads
        self.group_size = max(1, group_size)

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return self._dimension

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        out = np.empty((len(texts), self._dimension), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = [len(e.ids) for e in encodings]
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        for start in range(0, len(order), self.group_size):
            chosen = order[start : start + self.group_size]
            out[chosen] = self._encode_group([encodings[i].ids for i in chosen])
        return normalise(out)

    def _encode_group(self, token_ids: list[list[int]]) -> NDArray[np.float32]:
        """Mean of the token vectors under the attention mask, for one group padded here."""
        width = max(len(ids) for ids in token_ids)
        ids = np.full((len(token_ids), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(token_ids), width), dtype=np.int64)
        for row, tokens in enumerate(token_ids):
            ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feed)[0]
        weights = mask.astype(np.float32)
        summed = np.einsum("btd,bt->bd", hidden, weights)
        counts = np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
        return np.asarray(summed / counts, dtype=np.float32)
