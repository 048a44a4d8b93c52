"""Matching quality on the labelled evaluation set: the matcher beside its alternatives.

Prints top-1 and top-3 accuracy for each way of representing profiles and
scoring celebrities, next to a TF-IDF baseline, overall and per language.
"top-1 (also)" counts a pairing as right when it names the label or one of
the celebrities the set marks as also acceptable.

Run:
    python benchmarks/evaluate.py            # markdown table on stdout
    python benchmarks/evaluate.py --json     # one JSON object per method
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from matcher.embedding import DEFAULT_MODEL, Encoder, load_encoder  # noqa: E402
from matcher.index import ProfileIndex, facet_text  # noqa: E402
from matcher.matching import Scoring, celebrity_scores  # noqa: E402
from matcher.profiles import Profile, load_profiles  # noqa: E402

EVAL_SET = ROOT / "benchmarks" / "eval_set.jsonl"


@dataclass(frozen=True)
class Item:
    text: str
    label: str
    also: tuple[str, ...]
    lang: str
    difficulty: str


def load_items(path: Path) -> list[Item]:
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            raw = json.loads(line)
            items.append(
                Item(raw["text"], raw["label"], tuple(raw["also"]), raw["lang"], raw["difficulty"])
            )
    return items


#: A ranker returns, per item, the celebrity ids ordered best first.
Ranker = Callable[[Sequence[str]], list[list[str]]]


def profile_document(profile: Profile) -> str:
    """Everything a planner wrote about a celebrity, as one string."""
    parts = [profile.name, profile.tagline, *profile.facets.values(), " ".join(profile.tags)]
    return " ".join(parts)


def tfidf_ranker(profiles: Sequence[Profile], *, chars: bool = False) -> Ranker:
    """TF-IDF cosine against each whole profile: on words, or on character 2-4-grams
    (which also splits Chinese, where words are not separated by spaces)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = (
        TfidfVectorizer(sublinear_tf=True, analyzer="char_wb", ngram_range=(2, 4))
        if chars
        else TfidfVectorizer(sublinear_tf=True, stop_words="english")
    )
    matrix = vectorizer.fit_transform([profile_document(p) for p in profiles])
    ids = [p.id for p in profiles]

    def rank(texts: Sequence[str]) -> list[list[str]]:
        scores = (vectorizer.transform(texts) @ matrix.T).toarray()
        return [[ids[i] for i in np.argsort(-row, kind="stable")] for row in scores]

    return rank


def single_vector_ranker(profiles: Sequence[Profile], encoder: Encoder) -> Ranker:
    """The plain recipe: one embedding of the whole concatenated profile."""
    vectors = encoder.encode([profile_document(p) for p in profiles])
    ids = [p.id for p in profiles]

    def rank(texts: Sequence[str]) -> list[list[str]]:
        scores = encoder.encode(texts) @ vectors.T
        return [[ids[i] for i in np.argsort(-row, kind="stable")] for row in scores]

    return rank


def facet_ranker(
    profiles: Sequence[Profile],
    encoder: Encoder,
    scoring: Scoring,
    text_of: Callable[[str, str], str] = facet_text,
) -> Ranker:
    """The matcher's own scheme: one vector per facet, reduced per celebrity."""
    vectors = encoder.encode([text_of(f, t) for p in profiles for f, t in p.facets.items()])
    index = ProfileIndex(tuple(profiles), vectors, encoder.model_id)

    def rank(texts: Sequence[str]) -> list[list[str]]:
        scores = celebrity_scores(index.facet_scores(encoder.encode(texts)), index, scoring)
        ids = index.celebrity_ids
        return [[ids[i] for i in np.argsort(-row, kind="stable")] for row in scores]

    return rank


@dataclass(frozen=True)
class Scores:
    n: int
    top1: float
    top1_also: float
    top3: float


def score(items: Sequence[Item], rankings: Sequence[list[str]]) -> Scores:
    if not items:
        return Scores(0, float("nan"), float("nan"), float("nan"))
    top1 = sum(r[0] == it.label for it, r in zip(items, rankings, strict=True))
    also = sum(r[0] == it.label or r[0] in it.also for it, r in zip(items, rankings, strict=True))
    top3 = sum(it.label in r[:3] for it, r in zip(items, rankings, strict=True))
    n = len(items)
    return Scores(n, top1 / n, also / n, top3 / n)


def evaluate(items: Sequence[Item], rankers: dict[str, Ranker]) -> list[dict[str, object]]:
    texts = [it.text for it in items]
    rows: list[dict[str, object]] = []
    for name, ranker in rankers.items():
        rankings = ranker(texts)
        row: dict[str, object] = {"method": name}
        for subset, chosen in {
            "all": list(range(len(items))),
            "en": [i for i, it in enumerate(items) if it.lang == "en"],
            "zh": [i for i, it in enumerate(items) if it.lang == "zh"],
            "mixed": [i for i, it in enumerate(items) if it.lang == "mixed"],
            "hard+ambiguous": [i for i, it in enumerate(items) if it.difficulty != "easy"],
        }.items():
            row[subset] = score([items[i] for i in chosen], [rankings[i] for i in chosen]).__dict__
        rows.append(row)
    return rows


def markdown(rows: list[dict[str, object]], counts: dict[str, int]) -> str:
    header = (
        "| method | top-1 | top-1 (also) | top-3 | en top-1 | en top-3 "
        "| zh top-1 | mixed top-1 | hard+ambiguous top-1 |"
    )
    lines = [
        f"Evaluation set: {counts['all']} texts ({counts['en']} en, {counts['zh']} zh, "
        f"{counts['mixed']} mixed; {counts['hard+ambiguous']} hard or ambiguous)",
        "",
        header,
        "|---" * 9 + "|",
    ]
    for row in rows:
        a, en, zh, mx, hard = (row[k] for k in ("all", "en", "zh", "mixed", "hard+ambiguous"))
        lines.append(
            f"| {row['method']} | {a['top1']:.3f} | {a['top1_also']:.3f} | {a['top3']:.3f} "  # type: ignore[index]
            f"| {en['top1']:.3f} | {en['top3']:.3f} | {zh['top1']:.3f} | {mx['top1']:.3f} "  # type: ignore[index]
            f"| {hard['top1']:.3f} |"  # type: ignore[index]
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--eval-set", type=Path, default=EVAL_SET)
    parser.add_argument("--profiles", type=Path, default=ROOT / "profiles")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--json", action="store_true", help="one JSON object per method")
    args = parser.parse_args(argv)

    items = load_items(args.eval_set)
    profiles = load_profiles(args.profiles).active
    encoder = load_encoder(args.model)
    rankers: dict[str, Ranker] = {
        "TF-IDF baseline (words)": tfidf_ranker(profiles),
        "TF-IDF baseline (character 2-4-grams)": tfidf_ranker(profiles, chars=True),
        "single vector per profile": single_vector_ranker(profiles, encoder),
    }
    for scoring in Scoring:
        default = " (the matcher)" if scoring is Scoring.CENTROID else ""
        rankers[f"facets, {scoring.value}{default}"] = facet_ranker(profiles, encoder, scoring)
    rankers["facets prefixed with their name, centroid"] = facet_ranker(
        profiles, encoder, Scoring.CENTROID, text_of=lambda facet, text: f"{facet}: {text}"
    )
    rows = evaluate(items, rankers)
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        counts = {k: v["n"] for k, v in rows[0].items() if isinstance(v, dict)}  # type: ignore[misc]
        print(markdown(rows, counts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
