"""Matching quality on every labelled roster: the one tuned on, and three nobody tuned for.

A new planner writes a roster facets-only (name, tagline, facets, tags) and
no shopper examples; the sample roster's hand-written examples and Chinese
facets make it easy. So the matcher's settings are chosen on the sample
roster alone (``sample`` and its facets-only copy ``sample-facets``, made
here by dropping ``examples``, ``facets_zh`` and ``tagline_zh``), and
reported on three rosters written for other brands before any model's output
was seen (``benchmarks/rosters/*``):

- ``sportswear``: a sportswear brand's five athletes, English facets;
- ``tea``: a tea brand's eight KOLs, facets written in Chinese;
- ``fragrance``: a fragrance house's ten faces, English facets.

Each has 175 to 287 shopper texts (a third or more in Chinese, some mixed,
hard and ambiguous ones marked). "top-1 (also)" counts a pairing as right
when it names the label or a celebrity the set marks as also acceptable.

Rows per roster: the matcher with each model given, its facets' centroid
alone (what the matcher did before it embedded the whole profile), and the
plain single-vector baseline (one vector of the concatenated profile, the
same encoder).

Run:
    python benchmarks/rosters.py                      # the default model
    python benchmarks/rosters.py --model use-multilingual-v3:int8 --model embeddinggemma-300m
    python benchmarks/rosters.py --json               # one JSON object per row
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evaluate import Item, load_items  # noqa: E402

from matcher.encoders import DEFAULT_MODEL, Encoder, load_encoder  # noqa: E402
from matcher.index import profile_texts  # noqa: E402
from matcher.matching import Matcher, load_matcher  # noqa: E402
from matcher.profiles import load_profiles  # noqa: E402

HERE = ROOT / "benchmarks"
#: name -> (profiles folder, labelled texts, tuned on it)
ROSTERS = {
    "sample": (ROOT / "profiles", HERE / "eval_set.jsonl", True),
    "sample-facets": (None, HERE / "eval_set.jsonl", True),
    "sportswear": (
        HERE / "rosters/sportswear/profiles",
        HERE / "rosters/sportswear/shoppers.jsonl",
        False,
    ),
    "tea": (HERE / "rosters/tea/profiles", HERE / "rosters/tea/shoppers.jsonl", False),
    "fragrance": (
        HERE / "rosters/fragrance/profiles",
        HERE / "rosters/fragrance/shoppers.jsonl",
        False,
    ),
}
#: Fields a planner in a hurry leaves out.
EXTRAS = ("examples", "facets_zh", "tagline_zh")


@dataclass(frozen=True)
class Row:
    roster: str
    tuned: bool
    method: str
    n: int
    top1: float
    top1_also: float
    top3: float
    en: float
    zh: float
    mixed: float
    hard: float


def facets_only(source: Path, dest: Path) -> Path:
    """A copy of a roster with what a planner in a hurry leaves out removed."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.glob("*.yaml")):
        profile = yaml.safe_load(path.read_text(encoding="utf-8"))
        for key in EXTRAS:
            profile.pop(key, None)
        (dest / path.name).write_text(yaml.safe_dump(profile, allow_unicode=True), encoding="utf-8")
    return dest


def score(
    roster: str, tuned: bool, method: str, items: Sequence[Item], ranked: list[list[str]]
) -> Row:
    def share(flags: list[bool]) -> float:
        return round(float(np.mean(flags)), 3) if flags else float("nan")

    top1 = [r[0] == i.label for r, i in zip(ranked, items, strict=True)]
    also = [r[0] in (i.label, *i.also) for r, i in zip(ranked, items, strict=True)]
    top3 = [i.label in r[:3] for r, i in zip(ranked, items, strict=True)]

    def where(test: object) -> list[bool]:
        return [a for a, i in zip(also, items, strict=True) if test(i)]  # type: ignore[operator]

    return Row(
        roster,
        tuned,
        method,
        len(items),
        share(top1),
        share(also),
        share(top3),
        share(where(lambda i: i.lang == "en")),
        share(where(lambda i: i.lang == "zh")),
        share(where(lambda i: i.lang == "mixed")),
        share(where(lambda i: i.difficulty != "easy")),
    )


def ranking(matcher: Matcher, texts: Sequence[str]) -> list[list[str]]:
    k = matcher.roster_size
    return [[m.celebrity_id for m in matches] for matches in matcher.match_many(list(texts), k)]


def plain_ranking(encoder: Encoder, profiles_dir: Path, texts: Sequence[str]) -> list[list[str]]:
    """One vector per celebrity, of name, tagline, facets and tags joined: the plain recipe."""
    profiles = load_profiles(profiles_dir).active
    vectors = encoder.encode([profile_texts(p)[0][1] for p in profiles])
    scores = encoder.encode(list(texts)) @ vectors.T
    ids = [p.id for p in profiles]
    return [[ids[j] for j in np.argsort(-row, kind="stable")] for row in scores]


def evaluate(models: Sequence[str], names: Sequence[str]) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        for name in names:
            folder, texts_path, tuned = ROSTERS[name]
            if folder is None:
                folder = facets_only(ROOT / "profiles", work / name)
            items = load_items(texts_path)
            texts = [i.text for i in items]
            for model in models:
                encoder = load_encoder(model)
                label = "the matcher" + ("" if model == DEFAULT_MODEL else f" ({model})")
                matcher, _ = load_matcher(
                    folder, encoder=encoder, index_dir=work / f"{name}-{model}"
                )
                rows.append(score(name, tuned, label, items, ranking(matcher, texts)))
                matcher.profile_weight = 0.0
                centroid = f"{label}, facets' centroid only"
                rows.append(score(name, tuned, centroid, items, ranking(matcher, texts)))
                plain = f"plain: one vector of the concatenated profile ({model})"
                rows.append(score(name, tuned, plain, items, plain_ranking(encoder, folder, texts)))
            print(f"{name}: done", file=sys.stderr)
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model", action="append", help="a model setting (repeatable); default: the default model"
    )
    parser.add_argument(
        "--roster", action="append", choices=list(ROSTERS), help="only these rosters (repeatable)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per row")
    args = parser.parse_args(argv)
    rows = evaluate(args.model or [DEFAULT_MODEL], args.roster or list(ROSTERS))
    if args.json:
        for row in rows:
            print(json.dumps(row.__dict__, ensure_ascii=False))
        return
    columns = "top-1 | top-1 (also) | top-3 | en | zh | mixed | hard+ambiguous"
    print(f"| roster | method | texts | {columns} |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        roster = r.roster + (" (tuned on)" if r.tuned else "")
        cells = [r.top1, r.top1_also, r.top3, r.en, r.zh, r.mixed, r.hard]
        print(f"| {roster} | {r.method} | {r.n} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
