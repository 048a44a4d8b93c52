"""Make, once, an int8 ONNX copy of a sentence-transformers model, and keep it.

Serving a transformer through torch costs a whole torch import, and fp32
arithmetic, in every worker. An int8 ONNX Runtime copy answers the same text
about twice as fast, starts in a fraction of the time and needs no torch at
all, so it is made once, when an index is first built, and cached beside the
index (``INDEX/models/``), keyed by the source model's identity and by the
recipe below. Workers starting later only read it.

The recipe, measured on the sample roster's profile texts and the labelled
shopper texts (docs/performance.md):

- export the transformer with ``torch.onnx`` (pooling and normalising stay in
  numpy, see :mod:`matcher.encoders.st`);
- quantize the weights of every linear layer to int8, one scale per output
  channel (per-tensor scales kept cosine only ~0.94 to the full model), using
  7 of the 8 bits: without VNNI, x86 CPUs multiply int8 pairs with an
  instruction that saturates at 16 bits, and full 8-bit weights lost accuracy
  there;
- leave the token embeddings in fp32 (quantizing them cost accuracy for no
  speed), and the first layer's feed-forward down-projection too: its inputs
  have outliers that 8 bits clip, and keeping that one layer brings the worst
  cosine on real texts from 0.979 to 0.985 for about a tenth of the time.

An export in the cache is checked (recipe, source model, checksum) before use;
a missing, partial or corrupt one is rebuilt, never used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..files import atomic_write, file_sha256, locked
from .base import quantize_linear_layers

log = logging.getLogger(__name__)

#: Bump when the export or quantization changes: vectors change, so indexes
#: built with the old recipe are rebuilt (the encoder's identity includes it).
RECIPE = "onnx-int8-r2"
MODEL_FILE = "model.onnx"
INFO_FILE = "export.json"
LOCK = ".export.lock"
#: Token positions used to trace the graph; the exported graph takes any
#: batch size and length.
_TRACE_SHAPE = (2, 8)


class ExportStateError(Exception):
    """A cached export that must not be used: missing, partial or corrupt."""


def export_folder(cache_dir: str | Path, source_id: str) -> Path:
    """Where the export of ``source_id`` lives in ``cache_dir``.

    The name carries a readable slug and a digest of the source's identity and
    the recipe, so another model version or recipe gets its own folder.
    """
    digest = hashlib.sha256(f"{RECIPE}\n{source_id}".encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9.-]+", "-", source_id.split("@", 1)[0]).strip("-")[-48:]
    return Path(cache_dir) / f"{slug or 'model'}-{digest}"


def read_export(folder: str | Path, source_id: str) -> Path:
    """The verified model file of a cached export.

    Raises:
        ExportStateError: no export, one of another recipe or source, or a model
            file that does not match its recorded checksum.
    """
    folder = Path(folder)
    info_path = folder / INFO_FILE
    if not info_path.is_file():
        raise ExportStateError(f"no export in {folder}")
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
        if not isinstance(info, dict):
            raise ValueError("not an object")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ExportStateError(f"{info_path} is corrupt ({exc})") from exc
    if info.get("recipe") != RECIPE or info.get("source_id") != source_id:
        raise ExportStateError(
            f"{info_path} holds {info.get('source_id')!r} ({info.get('recipe')!r}), "
            f"not {source_id!r} ({RECIPE!r})"
        )
    model_path = folder / MODEL_FILE
    try:
        digest = file_sha256(model_path)
    except OSError as exc:
        raise ExportStateError(f"export model missing in {folder} ({exc})") from exc
    if digest != info.get("sha256"):
        raise ExportStateError(f"{model_path} does not match its checksum in {INFO_FILE}")
    return model_path


def ensure_export(location: str | Path, source_id: str, cache_dir: str | Path) -> Path:
    """The int8 ONNX model for the sentence-transformers model at ``location``.

    Reuses a verified export from ``cache_dir``; otherwise exports and
    quantizes (seconds, and the one time torch is imported) and stores the
    result atomically. Processes starting together take turns, so only the
    first one exports.

    Args:
        location: the folder of the sentence-transformers model.
        source_id: its identity (``model_id`` of the full-precision encoder).
        cache_dir: where exports are kept, e.g. ``INDEX/models``.

    Returns:
        The path of the quantized ``model.onnx``.

    Raises:
        ConfigError: the model cannot be exported (torch, onnx or its weights missing).
    """
    folder = export_folder(cache_dir, source_id)
    try:
        return read_export(folder, source_id)
    except ExportStateError:
        pass
    folder.mkdir(parents=True, exist_ok=True)
    with locked(folder / LOCK):
        try:
            return read_export(folder, source_id)  # another process made it meanwhile
        except ExportStateError as exc:
            log.info("exporting %s to int8 ONNX: %s", source_id, exc)
        return _build_export(Path(location), source_id, folder)


def _build_export(location: Path, source_id: str, folder: Path) -> Path:
    """Export, quantize and store; the info file is written last, as the commit."""
    with tempfile.TemporaryDirectory(dir=folder, prefix=".build-") as scratch:
        fp32 = Path(scratch) / "fp32.onnx"
        int8 = Path(scratch) / MODEL_FILE
        export_onnx(location, fp32)
        quantize_onnx(fp32, int8)
        with open(int8, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(int8, 0o644)
        (folder / INFO_FILE).unlink(missing_ok=True)
        os.replace(int8, folder / MODEL_FILE)
    info = {
        "recipe": RECIPE,
        "source_id": source_id,
        "sha256": file_sha256(folder / MODEL_FILE),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": _versions(),
    }
    atomic_write(folder / INFO_FILE, json.dumps(info, indent=2).encode("utf-8"))
    return folder / MODEL_FILE


def export_onnx(location: Path, destination: Path) -> None:
    """Trace the transformer of a sentence-transformers model into an ONNX graph.

    The graph takes ``input_ids``, ``attention_mask`` (and ``token_type_ids``
    when the model has them) and returns the last hidden state, with batch and
    sequence length left dynamic.
    """
    try:
        import torch
        from transformers import AutoModel
    except ImportError as exc:  # pragma: no cover - declared dependencies
        raise ConfigError(f"exporting to ONNX needs torch and transformers ({exc})") from exc

    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        model = AutoModel.from_pretrained(str(location)).eval()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the transformer in {location} to export it") from exc
    uses_types = int(getattr(model.config, "type_vocab_size", 0) or 0) > 0
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if uses_types else [])

    class LastHiddenState(torch.nn.Module):
        """Keyword arguments only: positional order differs between transformers versions."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *inputs: Any) -> Any:
            return self.inner(**dict(zip(names, inputs, strict=True))).last_hidden_state

    ids = torch.ones(_TRACE_SHAPE, dtype=torch.long)
    example = (ids, torch.ones_like(ids), torch.zeros_like(ids))[: len(names)]
    axes = {name: {0: "batch", 1: "tokens"} for name in [*names, "last_hidden_state"]}
    # The tracer warns about constant-folded shapes and the exporter about its
    # own deprecation; the graph is checked against the full model by the tests
    # and the benchmark, so these warnings are noise here.
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastHiddenState(model),
            example,
            str(destination),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


def quantize_onnx(source: Path, destination: Path) -> None:
    """Quantize the linear layers' weights to per-channel int8 (see the module's recipe)."""
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - declared dependencies
        raise ConfigError(f"quantizing needs onnx and onnxruntime ({exc})") from exc

    graph = onnx.load(str(source), load_external_data=False).graph
    weights = {init.name: tuple(init.dims) for init in graph.initializer}
    keep = [first_down_projection(graph.node, weights)]
    quantize_linear_layers(source, destination, nodes_to_exclude=[name for name in keep if name])


def first_down_projection(nodes: Any, weights: dict[str, tuple[int, ...]]) -> str | None:
    """Name of the first MatMul whose weight narrows (e.g. 1536 -> 384): layer 0's FFN output."""
    for node in nodes:
        if node.op_type != "MatMul":
            continue
        for name in node.input:
            shape = weights.get(name)
            if shape is not None and len(shape) == 2 and shape[0] > shape[1]:
                return str(node.name)
    return None


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("torch", "transformers", "onnx", "onnxruntime"):
        with contextlib.suppress(PackageNotFoundError):
            found[package] = version(package)
    return found
