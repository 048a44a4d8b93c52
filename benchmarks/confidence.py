"""How often the matcher holds back an answer, and whether it holds back the right ones.

For each roster variant and encoder, prints: the share of real shopper texts
held back (wrongly: every one of them is a readable shopper; the target is
at most ~5%), top-1 accuracy (counting ``also``) of the held-back and of the
kept texts (held-back ones should be matched worse, or holding them back
loses good answers), and the share of unreadable texts held back (the
target is all of them).

The thresholds in ``matcher/confidence.py`` and ``matcher/gemma.py`` were
chosen with this script on the sample roster only; ``--sweep`` prints the
hold-back rate for a grid of floors and margins, which is how they were
picked. ``--roster`` and ``--texts`` run the same table on another roster
(a texts file needs ``text``; ``label`` and ``also``, if present, give the
accuracy columns).

Run:
    python benchmarks/confidence.py                       # sample roster, both encoders
    python benchmarks/confidence.py --model embeddinggemma-300m --sweep
    python benchmarks/confidence.py --roster OTHER/profiles --texts OTHER/shoppers.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from matcher.confidence import Thresholds, assess, encoder_confidence  # noqa: E402
from matcher.encoders import load_encoder  # noqa: E402
from matcher.index import build_index  # noqa: E402
from matcher.matching import Match, Matcher  # noqa: E402
from matcher.profiles import Roster, load_profiles  # noqa: E402

MODELS = ("use-multilingual-v3:int8", "embeddinggemma-300m")
EVAL_SET = ROOT / "benchmarks" / "eval_set.jsonl"
UNREADABLE = ROOT / "benchmarks" / "unreadable.jsonl"
#: The grid ``--sweep`` prints: floors around each model's scale (USE's cosines
#: run near 0.1-0.5, EmbeddingGemma's near 0.4-0.8), margins up to a clear lead.
FLOORS = (0.0, 0.05, 0.08, 0.1, 0.12, 0.15, 0.4, 0.42, 0.45, 0.5)
MARGINS = (0.0, 0.001, 0.0015, 0.002, 0.0025, 0.003, 0.005)


@dataclass(frozen=True)
class Text:
    text: str
    labels: frozenset[str]  # the label and the `also` celebrities; empty when unlabelled


def load_texts(path: Path) -> list[Text]:
    texts = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            raw = json.loads(line)
            label = raw.get("label")
            labels = frozenset([label, *raw.get("also", [])]) if label else frozenset()
            texts.append(Text(raw["text"], labels))
    return texts


def facets_only(roster: Roster) -> Roster:
    """The roster without ``examples`` and ``facets_zh``: what a planner writes first."""
    stripped = tuple(
        p.model_copy(update={"examples": [], "facets_zh": {}}) for p in roster.profiles
    )
    return Roster(roster.folder, stripped, ())


@dataclass(frozen=True)
class Answers:
    roster: str
    model: str
    matcher: Matcher
    real: list[tuple[Text, list[Match]]]
    unreadable: list[tuple[str, list[Match]]]


def answer(
    name: str, roster: Roster, model: str, real: Sequence[Text], unreadable: Sequence[str]
) -> Answers:
    encoder = load_encoder(model)
    index, _ = build_index(roster, encoder)
    matcher = Matcher(encoder, index)
    k = matcher.roster_size
    real_matches = matcher.match_many([t.text for t in real], k)
    junk_matches = matcher.match_many(list(unreadable), k)
    return Answers(
        name,
        model,
        matcher,
        list(zip(real, real_matches, strict=True)),
        list(zip(unreadable, junk_matches, strict=True)),
    )


def accuracy(pairs: Sequence[tuple[Text, list[Match]]]) -> str:
    labelled = [(t, m) for t, m in pairs if t.labels]
    if not labelled:
        return "n/a"
    right = sum(1 for t, m in labelled if m[0].celebrity_id in t.labels)
    return f"{right / len(labelled):.3f} ({len(labelled)})"


def row(answers: Answers, thresholds: Thresholds) -> dict[str, str]:
    size = answers.matcher.roster_size
    held: list[tuple[Text, list[Match]]] = []
    kept: list[tuple[Text, list[Match]]] = []
    reasons: Counter[str] = Counter()
    for text, matches in answers.real:
        verdict = assess(text.text, matches, thresholds, roster_size=size)
        (kept if verdict.confident else held).append((text, matches))
        if verdict.reason is not None:
            reasons[str(verdict.reason)] += 1
    junk_held = sum(
        1
        for text, matches in answers.unreadable
        if not assess(text, matches, thresholds, roster_size=size).confident
    )
    # What the floor and margin would catch without the text checks: how much
    # the score rules back the text rules up on this model.
    junk_by_scores = sum(
        1
        for _, matches in answers.unreadable
        if matches[0].score < thresholds.floor or matches[0].margin < thresholds.margin
    )
    n, junk = len(answers.real), len(answers.unreadable)
    return {
        "roster": answers.roster,
        "model": answers.model,
        "floor": f"{thresholds.floor:g}",
        "margin": f"{thresholds.margin:g}",
        "real held back": f"{len(held) / n:.1%} ({len(held)}/{n})" if n else "n/a",
        "why": ", ".join(f"{r} {c}" for r, c in sorted(reasons.items())) or "-",
        "top-1 (also), kept": accuracy(kept),
        "top-1 (also), held back": accuracy(held),
        "unreadable held back": f"{junk_held / junk:.1%} ({junk_held}/{junk})" if junk else "n/a",
        "by scores alone": f"{junk_by_scores / junk:.0%}" if junk else "n/a",
    }


def shown(path: Path) -> str:
    """A path as the reader typed it from the repository root, when it is inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def markdown(rows: Sequence[dict[str, str]]) -> str:
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r[h] for h in header) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--roster", type=Path, default=ROOT / "profiles", help="profiles folder")
    parser.add_argument(
        "--texts", type=Path, default=EVAL_SET, help="real shopper texts (JSON Lines: text, label)"
    )
    parser.add_argument(
        "--unreadable", type=Path, default=UNREADABLE, help="texts that must be held back"
    )
    parser.add_argument(
        "--model", action="append", help=f"encoder (repeatable; default: {', '.join(MODELS)})"
    )
    parser.add_argument(
        "--full-only", action="store_true", help="skip the facets-only variant of the roster"
    )
    parser.add_argument("--sweep", action="store_true", help="also print a grid of thresholds")
    args = parser.parse_args(argv)

    roster = load_profiles(args.roster)
    variants = (
        [("full", roster)]
        if args.full_only
        else [
            ("full", roster),
            ("facets only", facets_only(roster)),
        ]
    )
    real = load_texts(args.texts)
    unreadable = [t.text for t in load_texts(args.unreadable)]
    rows = []
    grids = []
    for model in args.model or MODELS:
        for name, variant in variants:
            answers = answer(name, variant, model, real, unreadable)
            rows.append(row(answers, encoder_confidence(answers.matcher.encoder)))
            if args.sweep:
                grids += [
                    row(answers, Thresholds(floor, margin))
                    for floor in FLOORS
                    for margin in MARGINS
                ]
    print(
        f"roster {shown(args.roster)}, texts {shown(args.texts)} ({len(real)}),"
        f" unreadable {shown(args.unreadable)} ({len(unreadable)})"
    )
    print()
    print(markdown(rows))
    if grids:
        print()
        print(markdown(grids))


if __name__ == "__main__":
    main()
