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

from matcher.encoders import (  # noqa: E402
    DEFAULT_MODEL,
    Encoder,
    FusedEncoder,
    get_spec,
    load_encoder,
)
from matcher.encoders.e5 import MultilingualE5Encoder  # noqa: E402
from matcher.encoders.st import MINILM  # noqa: E402
from matcher.feedback import Correction  # noqa: E402
from matcher.index import build_index  # noqa: E402
from matcher.matching import (  # noqa: E402
    DEFAULT_CORRECTION_THRESHOLD,
    DEFAULT_EXAMPLE_WEIGHT,
    DEFAULT_PROFILE_WEIGHT,
    Scoring,
    celebrity_scores,
)
from matcher.profiles import Profile, Roster, load_profiles  # noqa: E402

GEMMA_THRESHOLD = get_spec("embeddinggemma-300m").correction_threshold

EVAL_SET = ROOT / "benchmarks" / "eval_set.jsonl"
FEEDBACK_PAIRS = ROOT / "benchmarks" / "feedback_pairs.jsonl"


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


class CachedEncoder:
    """Remembers vectors by text, so many configurations reuse one embedding pass."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.model_id = encoder.model_id
        self.dimension = encoder.dimension
        self._cache: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            for text, vector in zip(missing, self.encoder.encode(missing), strict=True):
                self._cache[text] = vector
        return np.stack([self._cache[t] for t in texts]).astype(np.float32)


def strip_profile(profile: Profile, *, chinese: bool, examples: bool) -> Profile:
    update: dict[str, object] = {}
    if not chinese:
        update["facets_zh"] = {}
    if not examples:
        update["examples"] = []
    return profile.model_copy(update=update)


def facet_ranker(
    profiles: Sequence[Profile],
    encoder: Encoder,
    scoring: Scoring = Scoring.CENTROID,
    *,
    chinese: bool = True,
    examples: bool = True,
    example_weight: float = 0.0,
    corrections: Sequence[Correction] = (),
    correction_threshold: float = DEFAULT_CORRECTION_THRESHOLD,
    profile_weight: float = 0.0,
    text_of: Callable[[str], str] = lambda text: text,
) -> Ranker:
    """The matcher's own scheme: one vector per profile text, reduced per celebrity."""
    chosen = tuple(strip_profile(p, chinese=chinese, examples=examples) for p in profiles)
    if text_of("x") != "x":  # the facet-name prefix experiment
        chosen = tuple(
            p.model_copy(update={"facets": {f: f"{f}: {t}" for f, t in p.facets.items()}})
            for p in chosen
        )
    roster = Roster(ROOT / "profiles", chosen, tuple(corrections))
    index, _ = build_index(roster, encoder)

    def rank(texts: Sequence[str]) -> list[list[str]]:
        row_scores = index.facet_scores(encoder.encode(texts))
        scores = celebrity_scores(
            row_scores, index, scoring, example_weight, correction_threshold, profile_weight
        )
        ids = index.celebrity_ids
        return [[ids[i] for i in np.argsort(-row, kind="stable")] for row in scores]

    return rank


def variant_ranker(
    profiles: Sequence[Profile],
    encoder: Encoder,
    variant: str,
    *,
    weight: float = 0.1,
    temperature: float = 0.1,
) -> Ranker:
    """Ideas tried on top of the matcher's scores and not kept (benchmarks/README.md).

    - ``logistic``: a logistic regression fitted on every profile text (facets,
      Chinese facets, examples) labelled with its celebrity; its probability,
      times ``weight``, is added to the matcher's score.
    - ``kernel``: instead of centroid and closest example, a celebrity scores the
      log of ``sum(exp(cosine / temperature))`` over all of its texts.
    - ``centred``: each celebrity's score minus its mean score over the other
      celebrities' texts, against celebrities that are close to everyone.
    """
    roster = Roster(ROOT / "profiles", tuple(profiles), ())
    index, _ = build_index(roster, encoder)
    owner = np.repeat(np.arange(len(index)), index.counts)
    w = DEFAULT_EXAMPLE_WEIGHT

    def matcher_scores(vectors: np.ndarray) -> np.ndarray:
        return celebrity_scores(index.facet_scores(vectors), index, Scoring.CENTROID, w)

    if variant == "logistic":
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=1.0, max_iter=5000).fit(index.vectors, owner)

        def scored(vectors: np.ndarray) -> np.ndarray:
            return matcher_scores(vectors) + weight * model.predict_proba(vectors)
    elif variant == "kernel":

        def scored(vectors: np.ndarray) -> np.ndarray:
            cosines = index.facet_scores(vectors) / temperature
            cosines -= cosines.max(axis=1, keepdims=True)
            kernel = np.exp(cosines)
            return np.log(np.stack([kernel[:, owner == c].sum(1) for c in range(len(index))], 1))
    elif variant == "centred":
        own = matcher_scores(index.vectors)
        mean = np.array([own[owner != c, c].mean() for c in range(len(index))])

        def scored(vectors: np.ndarray) -> np.ndarray:
            return matcher_scores(vectors) - mean
    else:
        raise ValueError(f"unknown variant {variant!r}")

    def rank(texts: Sequence[str]) -> list[list[str]]:
        scores = scored(encoder.encode(texts))
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
    return evaluate_rankings(items, {name: ranker(texts) for name, ranker in rankers.items()})


def evaluate_rankings(
    items: Sequence[Item], rankings_by_method: dict[str, list[list[str]]]
) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for name, rankings in rankings_by_method.items():
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
    """The results as a markdown table; "(also)" columns accept an also-acceptable celebrity."""
    columns = [
        ("top-1", "all", "top1"),
        ("top-1 (also)", "all", "top1_also"),
        ("top-3", "all", "top3"),
        ("en top-1 (also)", "en", "top1_also"),
        ("zh top-1 (also)", "zh", "top1_also"),
        ("mixed top-1 (also)", "mixed", "top1_also"),
        ("en top-3", "en", "top3"),
        ("zh top-3", "zh", "top3"),
        ("hard+ambiguous top-1 (also)", "hard+ambiguous", "top1_also"),
    ]
    lines = [
        f"Evaluation set: {counts['all']} texts ({counts['en']} en, {counts['zh']} zh, "
        f"{counts['mixed']} mixed; {counts['hard+ambiguous']} hard or ambiguous)",
        "",
        "| method | " + " | ".join(title for title, _, _ in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for row in rows:
        cells = [f"{row[subset][metric]:.3f}" for _, subset, metric in columns]  # type: ignore[index]
        lines.append(f"| {row['method']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def selection_cv(
    items: Sequence[Item],
    rankings_by_method: dict[str, list[list[str]]],
    *,
    folds: int = 5,
    seed: int = 7,
) -> tuple[list[list[str]], list[str]]:
    """Held-out rankings of *choosing* a method on this set, by k-fold cross-validation.

    For each fold, the method with the best top-1 (also) on the other folds is
    picked, and its rankings of the fold are kept. The result estimates what
    picking the best row of the table is worth on texts the pick never saw.

    Returns:
        The held-out rankings (in item order) and the method picked per fold.
    """
    order = list(range(len(items)))
    np.random.default_rng(seed).shuffle(order)
    held_rankings: list[list[str]] = [[] for _ in items]
    picks = []
    for fold in range(folds):
        held = set(order[fold::folds])
        seen = [i for i in order if i not in held]

        def fit(name: str, seen: list[int] = seen) -> float:
            rankings = rankings_by_method[name]
            return score([items[i] for i in seen], [rankings[i] for i in seen]).top1_also

        best = max(rankings_by_method, key=fit)
        picks.append(best)
        for i in held:
            held_rankings[i] = rankings_by_method[best][i]
    return held_rankings, picks


def matcher_ranker(
    profiles: Sequence[Profile],
    encoder: Encoder,
    corrections: Sequence[Correction] = (),
    threshold: float = DEFAULT_CORRECTION_THRESHOLD,
) -> Ranker:
    """The matcher's settings, with planner corrections."""
    return facet_ranker(
        profiles,
        encoder,
        example_weight=DEFAULT_EXAMPLE_WEIGHT,
        corrections=corrections,
        correction_threshold=threshold,
        profile_weight=DEFAULT_PROFILE_WEIGHT,
    )


def feedback_gain(
    items: Sequence[Item],
    profiles: Sequence[Profile],
    encoder: Encoder,
    *,
    folds: int = 5,
    seed: int = 7,
    threshold: float = DEFAULT_CORRECTION_THRESHOLD,
) -> tuple[list[list[str]], list[list[str]], float]:
    """Held-out gain of planner corrections, by k-fold cross-validation.

    For each fold, the matcher ranks the other folds' texts; every text it gets
    wrong (top-1 neither the label nor an also-acceptable celebrity) becomes a
    correction naming the labelled celebrity, as a planner would file it. The
    fold itself is then matched with and without those corrections. Every text
    is scored once, never by a matcher that saw it.

    Returns:
        Rankings without and with corrections (in item order), and the mean
        number of corrections per fold.
    """
    order = list(range(len(items)))
    np.random.default_rng(seed).shuffle(order)
    before: list[list[str]] = [[] for _ in items]
    after: list[list[str]] = [[] for _ in items]
    used = []
    plain = matcher_ranker(profiles, encoder)
    for fold in range(folds):
        held = order[fold::folds]
        seen = [i for i in order if i not in set(held)]
        ranked = plain([items[i].text for i in seen])
        corrections = [
            Correction(items[i].text, items[i].label)
            for i, ranking in zip(seen, ranked, strict=True)
            if ranking[0] != items[i].label and ranking[0] not in items[i].also
        ]
        used.append(len(corrections))
        corrected = matcher_ranker(profiles, encoder, corrections, threshold)
        held_texts = [items[i].text for i in held]
        for i, without, with_ in zip(held, plain(held_texts), corrected(held_texts), strict=True):
            before[i], after[i] = without, with_
    return before, after, float(np.mean(used))


def similar_text_gain(
    pairs_path: Path, profiles: Sequence[Profile], encoder: Encoder, threshold: float
) -> dict[str, float]:
    """What a correction does for a later, similar text from another shopper.

    ``feedback_pairs.jsonl`` holds pairs of texts by two shoppers with the same
    taste. Wherever the matcher pairs the first text wrongly, a planner files a
    correction; the second text is then matched with and without it.
    """
    pairs = [json.loads(line) for line in pairs_path.read_text("utf-8").splitlines() if line]
    plain = matcher_ranker(profiles, encoder)
    filed = plain([p["filed"] for p in pairs])
    wrong = [p for p, ranking in zip(pairs, filed, strict=True) if ranking[0] != p["label"]]
    corrections = [Correction(p["filed"], p["label"]) for p in wrong]
    corrected = matcher_ranker(profiles, encoder, corrections, threshold)

    def top1(ranker: Ranker, chosen: list[dict[str, str]]) -> float:
        rankings = ranker([p["later"] for p in chosen])
        hits = [r[0] == p["label"] for p, r in zip(chosen, rankings, strict=True)]
        return float(np.mean(hits)) if hits else float("nan")

    return {
        "pairs": len(pairs),
        "corrections": len(wrong),
        "later_wrongly_paired_before": top1(plain, wrong),
        "later_wrongly_paired_after": top1(corrected, wrong),
        "all_later_before": top1(plain, pairs),
        "all_later_after": top1(corrected, pairs),
    }


def all_rankers(
    profiles: Sequence[Profile],
    minilm: CachedEncoder,
    use: CachedEncoder,
    use_int8: CachedEncoder,
    default: CachedEncoder,
    minilm_use: CachedEncoder,
    e5: CachedEncoder,
    e5_raw: CachedEncoder,
    fused: CachedEncoder,
    gemma: CachedEncoder,
) -> dict[str, Ranker]:
    """Every row of the quality table (each builds its index now)."""
    w = DEFAULT_EXAMPLE_WEIGHT
    plain = {"chinese": False, "examples": False}
    rankers: dict[str, Ranker] = {
        "TF-IDF (words)": tfidf_ranker(profiles),
        "TF-IDF (character 2-4-grams)": tfidf_ranker(profiles, chars=True),
        "MiniLM, one vector per profile": single_vector_ranker(profiles, minilm),
        "MiniLM, facets": facet_ranker(profiles, minilm, **plain),
        "USE, facets": facet_ranker(profiles, use, **plain),
        "MiniLM+USE, facets": facet_ranker(profiles, minilm_use, **plain),
        "MiniLM+USE, facets + Chinese facets": facet_ranker(profiles, minilm_use, examples=False),
        "MiniLM+USE, facets + examples": facet_ranker(
            profiles, minilm_use, chinese=False, example_weight=w
        ),
        "MiniLM+USE, facets + Chinese facets + examples (the earlier default)": facet_ranker(
            profiles, minilm_use, example_weight=w
        ),
        "MiniLM+USE, the same, facets scored by blend": facet_ranker(
            profiles, minilm_use, Scoring.BLEND, example_weight=w
        ),
        "MiniLM alone, facets + Chinese facets + examples": facet_ranker(
            profiles, minilm, example_weight=w
        ),
        "USE int8 (the fast tier), facets + Chinese facets + examples": facet_ranker(
            profiles, use_int8, example_weight=w
        ),
        "USE int8, + the whole profile as one text": facet_ranker(
            profiles, use_int8, example_weight=w, profile_weight=DEFAULT_PROFILE_WEIGHT
        ),
        "USE at full precision, facets + Chinese facets + examples": facet_ranker(
            profiles, use, example_weight=w
        ),
        "e5, facets": facet_ranker(profiles, e5, **plain),
        "e5 uncentred, facets + Chinese facets + examples": facet_ranker(
            profiles, e5_raw, example_weight=w
        ),
        "e5 alone, facets + Chinese facets + examples": facet_ranker(
            profiles, e5, example_weight=w
        ),
        "e5+USE, facets": facet_ranker(profiles, fused, **plain),
        "e5+USE, facets + Chinese facets": facet_ranker(profiles, fused, examples=False),
        "e5+USE, facets + examples": facet_ranker(profiles, fused, chinese=False, example_weight=w),
        "e5+USE, facets + Chinese facets + examples (most accurate before EmbeddingGemma)": (
            facet_ranker(profiles, fused, example_weight=w)
        ),
        "e5 uncentred+USE, facets + Chinese facets + examples": facet_ranker(
            profiles, CachedEncoder(FusedEncoder([e5_raw.encoder, use.encoder])), example_weight=w
        ),
        "e5+USE+MiniLM, facets + Chinese facets + examples": facet_ranker(
            profiles,
            CachedEncoder(FusedEncoder([e5.encoder, use.encoder, minilm.encoder])),
            example_weight=w,
        ),
    }
    rankers |= {
        "EmbeddingGemma, one vector per profile": single_vector_ranker(profiles, gemma),
        "EmbeddingGemma, facets": facet_ranker(profiles, gemma, **plain),
        "EmbeddingGemma, facets + Chinese facets": facet_ranker(profiles, gemma, examples=False),
        "EmbeddingGemma, facets + examples": facet_ranker(
            profiles, gemma, chinese=False, example_weight=w
        ),
        "EmbeddingGemma on torch, facets + Chinese facets + examples": (
            facet_ranker(profiles, gemma, example_weight=w)
        ),
        "EmbeddingGemma on torch, + the whole profile as one text": facet_ranker(
            profiles, gemma, example_weight=w, profile_weight=DEFAULT_PROFILE_WEIGHT
        ),
        "EmbeddingGemma int8, facets + Chinese facets + examples": facet_ranker(
            profiles, default, example_weight=w
        ),
        "**the matcher** (default): EmbeddingGemma int8, + the whole profile as one text": (
            matcher_ranker(profiles, default, threshold=GEMMA_THRESHOLD)
        ),
        "EmbeddingGemma as bf16, the same": facet_ranker(
            profiles, CachedEncoder(load_encoder("embeddinggemma-300m:bf16")), example_weight=w
        ),
        "EmbeddingGemma+USE, facets + Chinese facets + examples": facet_ranker(
            profiles,
            CachedEncoder(FusedEncoder([gemma.encoder, use.encoder])),
            example_weight=w,
        ),
        "EmbeddingGemma+e5+USE, facets + Chinese facets + examples": facet_ranker(
            profiles,
            CachedEncoder(FusedEncoder([gemma.encoder, e5.encoder, use.encoder])),
            example_weight=w,
        ),
    }
    for scoring in (Scoring.MAX, Scoring.MEAN, Scoring.BLEND):
        rankers[f"e5+USE, facets scored by {scoring.value} instead of centroid"] = facet_ranker(
            profiles, fused, scoring, example_weight=w
        )
    for weight in (0.3, 0.7):
        rankers[f"e5+USE, example weight {weight} instead of {w}"] = facet_ranker(
            profiles, fused, example_weight=weight
        )
    rankers["e5+USE, facets prefixed with their name"] = facet_ranker(
        profiles, fused, example_weight=w, text_of=lambda text: "facet: " + text
    )
    for label, encoder in (("USE int8", use_int8), ("e5+USE", fused)):
        rankers[f"{label}, + logistic regression on the profile texts (weight 0.1)"] = (
            variant_ranker(profiles, encoder, "logistic")
        )
        rankers[f"{label}, kernel vote over profile texts (T 0.1)"] = variant_ranker(
            profiles, encoder, "kernel"
        )
        rankers[f"{label}, scores centred per celebrity"] = variant_ranker(
            profiles, encoder, "centred"
        )
    return rankers


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--eval-set", type=Path, default=EVAL_SET)
    parser.add_argument("--profiles", type=Path, default=ROOT / "profiles")
    parser.add_argument("--json", action="store_true", help="one JSON object per method")
    parser.add_argument(
        "--corrections", action="store_true", help="only the planner-corrections tables"
    )
    args = parser.parse_args(argv)

    items = load_items(args.eval_set)
    profiles = load_profiles(args.profiles).active
    minilm = CachedEncoder(load_encoder(MINILM))
    use = CachedEncoder(load_encoder("use-multilingual-v3"))  # full precision
    use_int8 = CachedEncoder(load_encoder("use-multilingual-v3:int8"))
    default = CachedEncoder(load_encoder(DEFAULT_MODEL))  # EmbeddingGemma as int8
    minilm_use = CachedEncoder(FusedEncoder([use.encoder, minilm.encoder]))
    e5 = CachedEncoder(load_encoder("multilingual-e5-small"))
    e5_raw = CachedEncoder(MultilingualE5Encoder(centre=False))
    fused = CachedEncoder(FusedEncoder([e5.encoder, use.encoder]))
    gemma = CachedEncoder(load_encoder("embeddinggemma-300m:full"))  # on torch
    if args.corrections:
        rankers = {"**the matcher**": matcher_ranker(profiles, default, threshold=GEMMA_THRESHOLD)}
    else:
        rankers = all_rankers(
            profiles, minilm, use, use_int8, default, minilm_use, e5, e5_raw, fused, gemma
        )
    texts = [it.text for it in items]
    rankings = {name: ranker(texts) for name, ranker in rankers.items()}
    rows = evaluate_rankings(items, rankings)
    candidates = {n: r for n, r in rankings.items() if "TF-IDF" not in n}
    held, picks = selection_cv(items, candidates)
    rows += evaluate_rankings(
        items, {"best row picked on four folds, scored on the fifth (5-fold)": held}
    )

    # Corrections with the default (EmbeddingGemma int8, its own threshold) and the fast tier.
    before, after, corrections = feedback_gain(items, profiles, default, threshold=GEMMA_THRESHOLD)
    _, g_loose, _ = feedback_gain(items, profiles, default)
    u_before, u_after, u_corrections = feedback_gain(items, profiles, use_int8)
    _, u_loose, _ = feedback_gain(items, profiles, use_int8, threshold=0.4)
    feedback_rows = evaluate_rankings(
        items,
        {
            "the matcher, held-out folds, no corrections": before,
            f"+ corrections from the other folds (~{corrections:.0f}), "
            f"threshold {GEMMA_THRESHOLD} (the matcher)": after,
            f"+ the same corrections, threshold {DEFAULT_CORRECTION_THRESHOLD}": g_loose,
            "USE int8, held-out folds, no corrections": u_before,
            f"+ corrections from the other folds (~{u_corrections:.0f}), "
            f"threshold {DEFAULT_CORRECTION_THRESHOLD} (USE's)": u_after,
            "+ the same corrections, threshold 0.4": u_loose,
        },
    )
    similar = {
        ("the matcher (EmbeddingGemma int8)", threshold): similar_text_gain(
            FEEDBACK_PAIRS, profiles, default, threshold
        )
        for threshold in (GEMMA_THRESHOLD, DEFAULT_CORRECTION_THRESHOLD, 0.55, 0.6, 0.7, 0.75)
    } | {
        ("USE int8", threshold): similar_text_gain(FEEDBACK_PAIRS, profiles, use_int8, threshold)
        for threshold in (DEFAULT_CORRECTION_THRESHOLD, 0.4, 0.55)
    }
    if args.json:
        for row in rows + feedback_rows:
            print(json.dumps(row))
        for (encoder, threshold), result in similar.items():
            print(json.dumps({"encoder": encoder, "similar_texts_threshold": threshold, **result}))
    else:
        counts = {k: v["n"] for k, v in rows[0].items() if isinstance(v, dict)}  # type: ignore[misc]
        print(markdown(rows, counts))
        print()
        print("Picked per fold:", "; ".join(picks))
        print()
        print("Planner feedback, 5-fold cross-validation:")
        print()
        print(markdown(feedback_rows, counts).split("\n", 2)[2])
        print()
        first = next(iter(similar.values()))
        print(
            f"Corrections and similar texts ({first['pairs']:.0f} pairs of texts by two "
            "shoppers; the first texts each encoder paired wrongly are corrected):"
        )
        print()
        print(
            "| encoder | correction threshold | first texts corrected | top-1 of later texts "
            "whose first text was corrected: before | after | top-1 of all later texts: "
            "before | after |"
        )
        print("|---|---|---|---|---|---|---|")
        for (encoder, threshold), r in similar.items():
            print(
                f"| {encoder} | {threshold} | {r['corrections']:.0f} "
                f"| {r['later_wrongly_paired_before']:.3f} "
                f"| {r['later_wrongly_paired_after']:.3f} | {r['all_later_before']:.3f} "
                f"| {r['all_later_after']:.3f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
