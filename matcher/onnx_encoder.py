"""A sentence-transformers model run as int8 ONNX: tokenizer, ONNX Runtime, mean pooling.

This is what ``SentenceTransformer.encode`` does for a mean-pooled model, in
a few lines and without torch: the model's own fast tokenizer
(``tokenizer.json``, truncated at the model's ``max_seq_length``), one ONNX
Runtime session over the quantized transformer (:mod:`matcher.quantize`), the
mean of the token vectors under the attention mask, and L2 normalisation.
Writing it here, rather than using ``sentence-transformers[onnx]``, avoids
optimum, whose transformers pin can pull sentence-transformers back a major
version.

Each text goes through the model on its own. Dynamic int8 quantization picks
one activation scale per call, so a text batched with others would get a
vector that depends on its neighbours (up to 0.03 per coordinate measured):
a shopper could be paired differently by the API and by a batch job. One text
per call keeps "same text, same vector"; batches use the cores by running
texts side by side, one ONNX Runtime thread each (docs/performance.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .embedding import LazyPool, normalise
from .errors import ConfigError

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: sentence-transformers' default when a model folder does not say.
DEFAULT_MAX_SEQ_LENGTH = 256


def session_options(threads: int) -> Any:
    """ONNX Runtime options for ``threads`` threads per call, sharing the machine politely.

    No inter-op pool, and pool threads that sleep rather than spin between
    calls, so a worker idling between requests leaves its core to the others.
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
        threads: texts encoded side by side in a batch, each call on one thread.
    """

    def __init__(
        self,
        location: str | Path,
        model_path: str | Path,
        model_id: str,
        *,
        threads: int = 1,
    ) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        location = Path(location)
        max_length = read_model_settings(location)
        self._tokenizer = Tokenizer.from_file(str(location / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=max_length)
        # One text per call, so no padding (tokenizer.json may ask for it).
        self._tokenizer.no_padding()
        try:
            self._session = onnxruntime.InferenceSession(
                str(model_path), session_options(1), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ConfigError(f"cannot load the ONNX model {model_path} ({exc})") from exc
        self._inputs = {node.name for node in self._session.get_inputs()}
        self._dimension = int(self._session.get_outputs()[0].shape[-1])
        self._model_id = model_id
        self.threads = max(1, threads)
        self._pool = LazyPool(self.threads, "onnx")

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
        token_ids = [e.ids for e in self._tokenizer.encode_batch(list(texts))]
        if self.threads > 1 and len(texts) > 1:
            rows = list(self._pool.get().map(self._encode_one, token_ids))
        else:
            rows = [self._encode_one(ids) for ids in token_ids]
        for row, vector in enumerate(rows):
            out[row] = vector
        return normalise(out)

    def _encode_one(self, token_ids: list[int]) -> NDArray[np.float32]:
        """The mean of one text's token vectors (no padding, so every token counts)."""
        ids = np.asarray([token_ids], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feed)[0]
        return np.asarray(hidden[0].mean(axis=0), dtype=np.float32)
