"""The FAISS index of profile facets, its manifest, and atomic save and load.

Each active celebrity contributes one unit vector per facet; rows are stored
contiguously per celebrity so per-celebrity scores are cheap reductions.
On disk a folder holds ``manifest.json`` (format, model id, dimension, per-
profile content hashes and row ranges) and a content-addressed
``facets-<digest>.faiss`` file. The manifest is replaced last and atomically,
so a crash mid-save leaves the previous index loadable; a manifest that does
not match its vectors, the model or the format is refused and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .encoders import Encoder, normalise
from .errors import IndexStateError
from .files import atomic_write, locked
from .profiles import Profile, Roster

if TYPE_CHECKING:
    from numpy.typing import NDArray

log = logging.getLogger(__name__)

#: Bump when the on-disk layout or the embedded text changes; older indexes are rebuilt.
INDEX_FORMAT = 2
MANIFEST = "manifest.json"
LOCK = ".lock"
BUILD_LOCK = ".build.lock"


def profile_hash(profile: Profile, examples: Sequence[str] = ()) -> str:
    """Digest of what gets embedded for ``profile`` (and its extra examples)."""
    extra = json.dumps(list(examples), ensure_ascii=False)
    payload = f"{INDEX_FORMAT}:{profile.content_hash()}:{extra}"
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Row:
    """One row of the index: a text of a celebrity's profile.

    ``kind`` is ``"facet"`` (``facet`` names it, ``lang`` is ``"en"`` for
    ``facets`` and ``"zh"`` for ``facets_zh``), ``"profile"`` (everything the
    planner wrote, as one text: :func:`profile_texts`), ``"example"`` (a text a
    fitting shopper might write, from the profile's ``examples``) or
    ``"correction"`` (a text a planner re-paired with this celebrity).
    """

    celebrity_id: str
    kind: Literal["facet", "profile", "example", "correction"]
    facet: str
    lang: str
    text: str


def profile_texts(profile: Profile) -> list[tuple[str, str]]:
    """The whole profile as one text per language: ``[(lang, text), ...]``.

    Name, tagline, every facet and the tags, in that order; a second text in
    Chinese when the planner wrote Chinese facets or a Chinese tagline. Facets
    alone leave out what a planner often says best in the tagline and the
    tags; on the sample roster written facets-only, half this text and half
    the facets' centroid paired 0.871 of the texts right against 0.826 for the
    centroid alone (benchmarks/README.md, ``benchmarks/rosters.py``).
    """
    tags = ", ".join(profile.tags)
    texts = [("en", _joined(profile.name, profile.tagline, profile.facets.values(), tags, ". "))]
    if profile.facets_zh or profile.tagline_zh:
        facets = [profile.facets_zh.get(name, text) for name, text in profile.facets.items()]
        tagline = profile.tagline_zh or profile.tagline
        texts.append(("zh", _joined(profile.name_zh, tagline, facets, tags, "。")))
    return texts


def _joined(name: str, tagline: str, facets: Iterable[str], tags: str, stop: str) -> str:
    head = f"{name}{stop}{tagline.rstrip('.。!！')}{stop}"
    body = " ".join(text.strip() for text in facets)
    return f"{head}{body} {tags}".strip()


def profile_rows(profile: Profile, corrections: Sequence[str] = ()) -> list[Row]:
    """The texts embedded for one celebrity: facets, the whole profile, examples, corrections.

    Facet texts are embedded as written: prefixing the facet name ("scent: ...")
    was measured and matched slightly worse (benchmarks/README.md).
    """
    rows = [Row(profile.id, "facet", f, "en", t) for f, t in profile.facets.items()]
    rows += [Row(profile.id, "facet", f, "zh", t) for f, t in profile.facets_zh.items()]
    rows += [Row(profile.id, "profile", "", lang, t) for lang, t in profile_texts(profile)]
    rows += [Row(profile.id, "example", "", "", t) for t in profile.examples]
    rows += [Row(profile.id, "correction", "", "", t) for t in corrections]
    return rows


@dataclass(frozen=True)
class BuildReport:
    """What building or refreshing an index did, for the CLI and logs."""

    embedded: tuple[str, ...] = ()
    reused: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    rebuilt_because: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.embedded or self.removed)


class ProfileIndex:
    """Vectors of the active profiles' texts in a FAISS inner-product index.

    Rows are contiguous per celebrity (facets, the whole profile, examples,
    corrections), so per-celebrity scores are cheap slices of one search result.

    Args:
        profiles: active profiles, in roster order.
        vectors: ``(rows, dimension)`` unit vectors in :func:`profile_rows` order.
        model_id: the encoder's identity.
        examples: extra example texts per celebrity id (planners' corrections).
    """

    def __init__(
        self,
        profiles: tuple[Profile, ...],
        vectors: NDArray[np.float32],
        model_id: str,
        examples: Mapping[str, Sequence[str]] | None = None,
    ):
        import faiss

        examples = examples or {}
        self.extra_examples = {k: tuple(v) for k, v in examples.items()}
        self.profiles = profiles
        self.model_id = model_id
        blocks = [profile_rows(p, examples.get(p.id, ())) for p in profiles]
        self.rows = tuple(row for block in blocks for row in block)
        vectors = normalise(vectors)
        if vectors.shape[0] != len(self.rows):
            raise ValueError(f"{vectors.shape[0]} vectors for {len(self.rows)} rows")
        self.vectors = vectors
        self.dimension = int(vectors.shape[1])
        counts = [len(block) for block in blocks]
        #: Row where each celebrity's block starts, its length, and how many of
        #: its rows are facets (the rest are examples).
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.intp)
        self.counts = np.asarray(counts, dtype=np.intp)
        self.facet_counts = np.asarray(
            [sum(r.kind == "facet" for r in block) for block in blocks], dtype=np.intp
        )
        self.profile_counts = np.asarray(
            [sum(r.kind == "profile" for r in block) for block in blocks], dtype=np.intp
        )
        self.example_counts = np.asarray(
            [sum(r.kind == "example" for r in block) for block in blocks], dtype=np.intp
        )
        #: ``facet_scores @ centroid_weights`` gives each celebrity's centroid cosine:
        #: the cosine with the normalised sum of its facet vectors.
        self.centroid_weights = np.zeros((len(self.rows), len(profiles)), dtype=np.float32)
        for position, (start, facets) in enumerate(
            zip(self.starts, self.facet_counts, strict=True)
        ):
            norm = float(np.linalg.norm(vectors[start : start + facets].sum(axis=0)))
            self.centroid_weights[start : start + facets, position] = 1.0 / max(norm, 1e-12)
        #: The same for the whole-profile rows (one per language): the cosine
        #: with their normalised mean.
        self.profile_weights = np.zeros((len(self.rows), len(profiles)), dtype=np.float32)
        for position in range(len(profiles)):
            rows = self.profile_slice(position)
            norm = float(np.linalg.norm(vectors[rows].sum(axis=0)))
            self.profile_weights[rows, position] = 1.0 / max(norm, 1e-12)
        self._faiss = faiss.IndexFlatIP(self.dimension)
        self._faiss.add(vectors)

    @property
    def celebrity_ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.profiles)

    def __len__(self) -> int:
        """Number of celebrities."""
        return len(self.profiles)

    def facet_slice(self, position: int) -> slice:
        """The facet rows of the celebrity at ``position``."""
        start = int(self.starts[position])
        return slice(start, start + int(self.facet_counts[position]))

    def profile_slice(self, position: int) -> slice:
        """The whole-profile rows of the celebrity at ``position`` (one per language)."""
        start = int(self.starts[position]) + int(self.facet_counts[position])
        return slice(start, start + int(self.profile_counts[position]))

    def example_slice(self, position: int) -> slice:
        """The example rows of the celebrity at ``position`` (may be empty)."""
        start = self.profile_slice(position).stop
        return slice(start, start + int(self.example_counts[position]))

    def correction_slice(self, position: int) -> slice:
        """The correction rows of the celebrity at ``position`` (may be empty)."""
        return slice(
            self.example_slice(position).stop,
            int(self.starts[position]) + int(self.counts[position]),
        )

    def facet_scores(self, queries: NDArray[np.float32]) -> NDArray[np.float32]:
        """Cosine of each query with every row (facets and examples).

        Rosters hold tens of celebrities, so every row is scored (``k`` = all
        rows): per-celebrity aggregation needs all of a celebrity's facets, and
        an exhaustive flat search of a few hundred rows costs microseconds.

        Returns:
            ``(len(queries), rows)`` array in row order.
        """
        queries = normalise(queries)
        if queries.shape[1] != self.dimension:
            raise ValueError(
                f"query dimension {queries.shape[1]} != index dimension {self.dimension}"
            )
        total = self._faiss.ntotal
        distances, ids = self._faiss.search(queries, total)
        scores = np.empty((queries.shape[0], total), dtype=np.float32)
        np.put_along_axis(scores, ids, distances, axis=1)
        return scores

    def profile_vectors(self, celebrity_id: str) -> NDArray[np.float32]:
        """All vectors of one celebrity (facets, then examples)."""
        position = self.celebrity_ids.index(celebrity_id)
        start = int(self.starts[position])
        return self.vectors[start : start + int(self.counts[position])]

    def serialize(self) -> bytes:
        import faiss

        return bytes(faiss.serialize_index(self._faiss))


def build_index(
    roster: Roster,
    encoder: Encoder,
    previous: Mapping[str, tuple[str, NDArray[np.float32]]] | None = None,
    *,
    on_embed: Callable[[str], None] | None = None,
) -> tuple[ProfileIndex, BuildReport]:
    """Embed the roster's active profiles, reusing vectors whose profile has not changed.

    Args:
        roster: the loaded profiles.
        encoder: the model to embed facets with.
        previous: ``{celebrity_id: (profile_hash, vectors)}`` from a stored index built
            with the same encoder; profiles whose hash matches are not re-embedded.
        on_embed: called with each celebrity id that is (re-)embedded.
    """
    previous = previous or {}
    blocks: list[NDArray[np.float32]] = []
    embedded: list[str] = []
    reused: list[str] = []
    active = roster.active
    extra = roster.corrected_examples()
    for profile in active:
        rows = profile_rows(profile, extra.get(profile.id, ()))
        digest = profile_hash(profile, extra.get(profile.id, ()))
        stored = previous.get(profile.id)
        if (
            stored is not None
            and stored[0] == digest
            and stored[1].shape
            == (
                len(rows),
                encoder.dimension,
            )
        ):
            blocks.append(stored[1])
            reused.append(profile.id)
            continue
        if on_embed is not None:
            on_embed(profile.id)
        blocks.append(encoder.encode([row.text for row in rows]))
        embedded.append(profile.id)
    active_ids = {p.id for p in active}
    removed = tuple(sorted(set(previous) - active_ids))
    vectors = np.concatenate(blocks, axis=0)
    index = ProfileIndex(active, vectors, encoder.model_id, extra)
    return index, BuildReport(tuple(embedded), tuple(reused), removed)


@dataclass(frozen=True)
class StoredIndex:
    """The vectors of a saved index, keyed by celebrity, ready to be reused."""

    manifest: dict[str, Any]
    by_profile: dict[str, tuple[str, NDArray[np.float32]]] = field(default_factory=dict)


def save_index(index: ProfileIndex, folder: str | Path) -> Path:
    """Write ``index`` to ``folder`` atomically and remove what the old manifest referenced.

    Returns:
        The manifest's path.
    """
    import faiss  # noqa: F401  (fail early if FAISS is missing, before touching the folder)

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    payload = index.serialize()
    digest = hashlib.sha256(payload).hexdigest()
    vectors_name = f"facets-{digest[:16]}.faiss"
    manifest = {
        "format": INDEX_FORMAT,
        "model_id": index.model_id,
        "dimension": index.dimension,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "vectors_file": vectors_name,
        "vectors_sha256": digest,
        "rows": len(index.rows),
        "profiles": [
            {
                "id": profile.id,
                "hash": profile_hash(profile, index.extra_examples.get(profile.id, ())),
                "facets": list(profile.facets),
                "start": int(start),
                "count": int(count),
            }
            for profile, start, count in zip(
                index.profiles, index.starts, index.counts, strict=True
            )
        ],
    }
    with locked(folder / LOCK):
        _sweep_temporaries(folder)
        atomic_write(folder / vectors_name, payload)
        atomic_write(
            folder / MANIFEST,
            json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8"),
        )
        for stale in folder.glob("facets-*.faiss"):
            if stale.name != vectors_name:
                stale.unlink(missing_ok=True)
    return folder / MANIFEST


def _sweep_temporaries(folder: Path) -> None:
    """Delete what a killed save left (``.facets-*.tmp``, ``.manifest.json.*.tmp``).

    Called under the folder's lock, which every save holds while it writes:
    any temporary seen then belongs to a save that is over, so all go, those
    named by earlier versions too.
    """
    for leftover in folder.glob(".*.tmp"):
        leftover.unlink(missing_ok=True)


def read_index(folder: str | Path, encoder: Encoder) -> StoredIndex:
    """Read and verify a saved index.

    Raises:
        IndexStateError: no index, or one that is corrupt, of another format, or
            built with another model. Such an index must be rebuilt, never served.
    """
    import faiss

    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise IndexStateError(f"no index in {folder}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            raise ValueError("not an object")
    except (ValueError, UnicodeDecodeError) as exc:
        raise IndexStateError(f"{manifest_path} is corrupt ({exc})") from exc
    if manifest.get("format") != INDEX_FORMAT:
        raise IndexStateError(
            f"{manifest_path} has index format {manifest.get('format')!r}, expected {INDEX_FORMAT}"
        )
    if manifest.get("model_id") != encoder.model_id:
        raise IndexStateError(
            f"index was built with model {manifest.get('model_id')!r}, not {encoder.model_id!r}"
        )
    if manifest.get("dimension") != encoder.dimension:
        raise IndexStateError(
            f"index dimension {manifest.get('dimension')!r} != model dimension {encoder.dimension}"
        )
    try:
        vectors_path = folder / Path(str(manifest["vectors_file"])).name
        payload = vectors_path.read_bytes()
    except (KeyError, OSError) as exc:
        raise IndexStateError(f"index vectors missing in {folder} ({exc})") from exc
    if hashlib.sha256(payload).hexdigest() != manifest.get("vectors_sha256"):
        raise IndexStateError(f"{vectors_path.name} does not match its checksum in the manifest")
    try:
        stored = faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8))
        vectors = stored.reconstruct_n(0, stored.ntotal)
    except RuntimeError as exc:
        raise IndexStateError(f"{vectors_path.name} is not a readable FAISS index") from exc
    if stored.ntotal != manifest.get("rows") or stored.d != encoder.dimension:
        raise IndexStateError(f"{vectors_path.name} does not match the manifest's shape")
    by_profile: dict[str, tuple[str, NDArray[np.float32]]] = {}
    try:
        for entry in manifest["profiles"]:
            start, count = int(entry["start"]), int(entry["count"])
            if start < 0 or count < 1 or start + count > stored.ntotal:
                raise ValueError(f"row range of {entry['id']!r} is outside the index")
            by_profile[str(entry["id"])] = (
                str(entry["hash"]),
                np.ascontiguousarray(vectors[start : start + count], dtype=np.float32),
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise IndexStateError(f"{manifest_path} has a malformed profile entry ({exc})") from exc
    return StoredIndex(manifest=manifest, by_profile=by_profile)


def ensure_index(
    roster: Roster,
    encoder: Encoder,
    folder: str | Path,
    *,
    on_embed: Callable[[str], None] | None = None,
) -> tuple[ProfileIndex, BuildReport]:
    """Load the saved index for ``roster``, re-embedding only what changed, and save it.

    A missing, corrupt or mismatched index is rebuilt from scratch; the reason is
    logged and returned in the report. Processes refreshing the same folder take
    turns (web workers starting together embed once, not once each).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with locked(folder / LOCK):
        _sweep_temporaries(folder)
    with locked(folder / BUILD_LOCK):
        rebuilt_because: str | None = None
        try:
            previous = read_index(folder, encoder).by_profile
        except IndexStateError as exc:
            rebuilt_because = str(exc)
            log.info("building the index from scratch: %s", exc)
            previous = {}
        index, report = build_index(roster, encoder, previous, on_embed=on_embed)
        if report.changed or rebuilt_because is not None:
            save_index(index, folder)
    return index, BuildReport(report.embedded, report.reused, report.removed, rebuilt_because)
