"""A candidate pool: the celebrities a brief is cast from, in the roster format.

A pool is a folder of profile files, read by :func:`matcher.profiles.load_profiles`
exactly like a roster, or a JSON Lines file holding one profile per line,
each validated by the same :class:`~matcher.profiles.Profile` model, so a
candidate who passes here can become a campaign's roster as is. Problems are
reported all at once, as ``file:line: field: problem``.

Each candidate is embedded the way the matcher sees a celebrity as a whole
(:mod:`matcher.matching`): half the normalised mean of its facet vectors and
half its whole-profile text (:func:`matcher.index.profile_texts`), both
languages. That sum is linear in the query, so one vector per candidate gives
exactly the matcher's facets-and-profile score with a single inner product,
which is what lets a pool of 100,000 go into one FAISS index. Example texts
are left out: they describe shoppers, and a pool is cast before any exist.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import ValidationError

from ..encoders import Encoder, normalise
from ..errors import Problem, ProfileError
from ..files import atomic_write
from ..index import profile_rows
from ..matching import DEFAULT_PROFILE_WEIGHT
from ..profiles import Profile, _problems_from, load_profiles

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: The largest pool read: the benchmarks cast from 100,000.
MAX_POOL = 200_000
#: Texts per encoder call while embedding a pool.
EMBED_BATCH = 128
JSONL_SUFFIXES = (".jsonl", ".ndjson")


@dataclass(frozen=True)
class Pool:
    """The active candidates of a pool, in file order, and where they came from."""

    profiles: tuple[Profile, ...]
    source: str

    @property
    def ids(self) -> list[str]:
        return [profile.id for profile in self.profiles]

    def position(self, candidate_id: str) -> int:
        """The candidate's position in the pool.

        Raises:
            KeyError: no candidate has this id.
        """
        for number, profile in enumerate(self.profiles):
            if profile.id == candidate_id:
                return number
        raise KeyError(candidate_id)

    def __len__(self) -> int:
        return len(self.profiles)


def load_pool(path: str | Path, *, within: str | Path | None = None) -> Pool:
    """Read a pool: a folder of profile files, or a JSON Lines file of profiles.

    Args:
        path: the folder, or the ``.jsonl`` file.
        within: for a folder, refuse files that link outside this folder.

    Raises:
        ProfileError: every problem found; nothing is half-loaded.
    """
    path = Path(path)
    if path.is_dir():
        roster = load_profiles(path, within=within)
        return Pool(roster.active, str(path))
    if not path.is_file():
        raise ProfileError([Problem(str(path), "", "no such pool: give a folder or a .jsonl file")])
    if path.suffix not in JSONL_SUFFIXES:
        raise ProfileError(
            [Problem(path.name, "", "a pool file must be JSON Lines (.jsonl), one profile a line")]
        )
    return parse_pool_lines(path.name, path.read_bytes())


def parse_pool_lines(file_name: str, raw: bytes) -> Pool:
    """Validate a JSON Lines pool from its bytes (a file, an upload).

    Raises:
        ProfileError: every problem found, each with its line.
    """
    problems: list[Problem] = []
    profiles: list[Profile] = []
    seen: dict[str, int] = {}
    lines = raw.split(b"\n")
    if len(lines) > MAX_POOL + 1:
        raise ProfileError([Problem(file_name, "", f"holds more than {MAX_POOL:,} lines")])
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line.decode("utf-8-sig" if number == 1 else "utf-8"))
        except UnicodeDecodeError:
            problems.append(Problem(file_name, "", "not valid UTF-8", number))
            continue
        except (ValueError, RecursionError) as exc:
            message = exc.msg if isinstance(exc, json.JSONDecodeError) else "cannot be read"
            problems.append(Problem(file_name, "", f"not valid JSON: {message}", number))
            continue
        if not isinstance(data, dict):
            problems.append(
                Problem(file_name, "", "must be one JSON object per line (a profile)", number)
            )
            continue
        try:
            profile = Profile.model_validate(data)
        except ValidationError as exc:
            problems.extend(
                Problem(p.file, p.field, p.message, number)
                for p in _problems_from(file_name, exc, {})
            )
            continue
        if profile.id in seen:
            problems.append(
                Problem(file_name, "id", f"the same id as line {seen[profile.id]}", number)
            )
            continue
        seen[profile.id] = number
        profiles.append(profile)
        if len(problems) >= 200:
            break
    if problems:
        raise ProfileError(problems)
    active = tuple(p for p in profiles if p.active)
    if not active:
        raise ProfileError([Problem(file_name, "", "holds no active candidate")])
    return Pool(active, file_name)


def category_of(profile: Profile, categories: Sequence[str] = ()) -> str | None:
    """A candidate's category: the first of its tags in ``categories``, or its first tag."""
    if categories:
        return next((tag for tag in profile.tags if tag in categories), None)
    return profile.tags[0] if profile.tags else None


def candidate_rows(profile: Profile) -> list[tuple[str, str, str]]:
    """A candidate's embedded texts, ``(kind, facet, text)``: facets, then the whole profile."""
    return [
        (row.kind, row.facet, row.text)
        for row in profile_rows(profile)
        if row.kind in {"facet", "profile"}
    ]


def embed_pool(
    profiles: Sequence[Profile],
    encoder: Encoder,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> NDArray[np.float32]:
    """One vector per candidate, the matcher's view of a celebrity as a whole.

    ``(1 - w) * centroid(facets) + w * centroid(whole profile)``, with the
    matcher's profile weight ``w``; its inner product with a unit query is
    the matcher's facets-and-profile score for that query.

    Args:
        progress: called with (candidates embedded, total) as it goes.

    Returns:
        ``(len(profiles), dimension)`` float32 rows (of length at most 1).
    """
    out = np.zeros((len(profiles), encoder.dimension), dtype=np.float32)
    pending: list[tuple[int, str, str]] = []
    done = 0

    def flush() -> None:
        vectors = encoder.encode([text for _, _, text in pending])
        by_candidate: dict[int, dict[str, list[NDArray[np.float32]]]] = {}
        for (position, kind, _), vector in zip(pending, vectors, strict=True):
            by_candidate.setdefault(position, {}).setdefault(kind, []).append(vector)
        for position, kinds in by_candidate.items():
            facets = normalise(np.sum(kinds["facet"], axis=0, keepdims=True))[0]
            whole = normalise(np.sum(kinds["profile"], axis=0, keepdims=True))[0]
            out[position] = (1 - DEFAULT_PROFILE_WEIGHT) * facets + DEFAULT_PROFILE_WEIGHT * whole
        pending.clear()

    for position, profile in enumerate(profiles):
        pending.extend((position, kind, text) for kind, _, text in candidate_rows(profile))
        if len(pending) >= EMBED_BATCH:
            flush()
            done = position + 1
            if progress is not None:
                progress(done, len(profiles))
    if pending:
        flush()
    if progress is not None:
        progress(len(profiles), len(profiles))
    return np.ascontiguousarray(out)


def pool_digest(profiles: Sequence[Profile], model_id: str) -> str:
    """A digest of everything a pool's vectors depend on: the model and every embedded text."""
    digest = hashlib.sha256(model_id.encode("utf-8"))
    for profile in profiles:
        rows = json.dumps(candidate_rows(profile), ensure_ascii=False, separators=(",", ":"))
        digest.update(rows.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def cached_pool_vectors(
    profiles: Sequence[Profile],
    encoder: Encoder,
    folder: str | Path,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> NDArray[np.float32]:
    """:func:`embed_pool`, keeping the vectors in ``folder`` under the pool's digest.

    A pool cast again with the same model and texts (another ``-k``,
    ``--exact``, a new brief) is not embedded again; a changed candidate or
    model changes the digest. The file is written atomically and an
    unreadable or mis-shaped one is embedded again, never used.
    """
    path = Path(folder) / f"pool-{pool_digest(profiles, encoder.model_id)[:32]}.npy"
    try:
        stored = np.load(path, allow_pickle=False)
        if stored.shape == (len(profiles), encoder.dimension) and stored.dtype == np.float32:
            if progress is not None:
                progress(len(profiles), len(profiles))
            return np.ascontiguousarray(stored)
    except (OSError, ValueError):
        pass
    vectors = embed_pool(profiles, encoder, progress=progress)
    buffer = io.BytesIO()
    np.save(buffer, vectors, allow_pickle=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, buffer.getvalue())
    return vectors
