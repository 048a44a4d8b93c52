"""Validate the labelled shopper-text evaluation set for the matcher.

The evaluation set (``benchmarks/eval_set.jsonl``) holds one JSON object per line::

    {"text": ..., "label": ..., "also": [...], "lang": ..., "difficulty": ...}

This script checks that

* every line is valid JSON with exactly the expected keys and allowed values,
  that ``label`` / ``also`` are celebrity ids found in ``profiles/`` (``also``
  without the label, non-empty for "ambiguous" items), that the script of the
  text matches ``lang``, that it is 8-60 words long (two Chinese characters
  count as one word) and that no text is duplicated;
* no text reuses a *distinctive word* of the celebrity it is labelled with.
  A distinctive word is a lowercased alphabetic word of 4+ letters from the
  profile's name, tagline, tags and facet texts (minus stopwords) that appears
  in no other profile. Words are compared after stripping a simple
  plural / -ing / -ed suffix, so "tents" matches "tent". The celebrity's
  full name (English), Chinese name and every 2-character substring of
  ``tagline_zh`` also count as distinctive;
* the set is large and balanced enough (see ``MIN_*`` constants).

It prints every leak (line number, word), the counts by lang, label and
difficulty, and exits non-zero on any leak, malformed line or too-small count.

Usage::

    python benchmarks/check_eval_set.py [EVAL_SET] [PROFILES_DIR] [--strict] [--show-words]

``--strict`` additionally treats words from the profile files' ``#`` comments as
profile words and also reports leaks of the celebrities listed in ``also``.
``--show-words`` prints each celebrity's distinctive words and exits.

Only the standard library and PyYAML are needed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
DEFAULT_EVAL_SET = HERE / "eval_set.jsonl"
DEFAULT_PROFILES = HERE.parent / "profiles"

KEYS = frozenset({"text", "label", "also", "lang", "difficulty"})
LANGS = ("en", "zh", "mixed")
DIFFICULTIES = ("easy", "hard", "ambiguous")
FACETS = ("style", "values", "lifestyle", "scent", "audience")

MIN_TOTAL = 215
MIN_PER_LABEL = 28
MIN_LANG = {"zh": 45}
# Soft targets: reported as warnings, never fail the run.
TARGET_LANG = {"en": 160, "mixed": 10}
TARGET_DIFFICULTY_SHARE = {"easy": 0.55, "hard": 0.30, "ambiguous": 0.15}
MIN_WORDS, MAX_WORDS = 8, 60

STOPWORDS = frozenset(
    """
    about above after again against almost also always among another around because
    been before being below between both could does doing done down during each
    either else even ever every from further have having here hers herself himself
    into itself just less many more most much must near only onto other ours over
    quite rather same should since some such than that their theirs them then there
    these they this those though through under until upon very were what whatever
    when where whether which while whom whose will with within without would your
    yours
    """.split()
)

WORD_RE = re.compile(r"[a-z]+")
CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
CJK_RUN_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")
LATIN_WORD_RE = re.compile(r"[A-Za-z]+(?:['’-][A-Za-z]+)*")


@dataclass
class Item:
    """One parsed line of the evaluation set."""

    line: int
    text: str
    label: str
    also: list[str]
    lang: str
    difficulty: str


@dataclass
class Distinctive:
    """Distinctive vocabulary of one celebrity profile."""

    words: dict[str, str] = field(default_factory=dict)  # stem key -> surface word
    phrases: set[str] = field(default_factory=set)  # matched as lowercase substrings


def stems(word: str) -> frozenset[str]:
    """Comparison keys for ``word`` after stripping a simple plural / -ing / -ed suffix.

    Crude but symmetric: two words match when their key sets intersect, so
    "tents"/"tent", "climbing"/"climb" and "writing"/"writes"/"write" collide,
    while "plane"/"plans" do not. An -ing/-ed form yields two keys, with and
    without a restored final "e" ("writing" -> {"writ", "write"}).
    """
    w = word.lower()
    if len(w) > 4 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif len(w) > 4 and w.endswith("es") and w[:-2].endswith(("s", "x", "z", "ch", "sh")):
        w = w[:-2]
    elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    for suffix, min_len in (("ing", 6), ("ed", 5)):
        if len(w) >= min_len and w.endswith(suffix):
            w = w[: -len(suffix)]
            if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz":
                w = w[:-1]  # running -> run, planned -> plan
            return frozenset({w, w + "e"})
    return frozenset({w})


def content_words(text: str) -> list[str]:
    """Lowercased alphabetic words of 4+ letters that are not stopwords."""
    return [w for w in WORD_RE.findall(text.lower()) if len(w) >= 4 and w not in STOPWORDS]


def load_profiles(profiles_dir: Path) -> dict[str, dict[str, Any]]:
    """Load every ``*.yaml`` / ``*.yml`` profile, keyed by its ``id``."""
    profiles: dict[str, dict[str, Any]] = {}
    for path in sorted(profiles_dir.glob("*.y*ml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or "id" not in data:
            continue
        data["_path"] = path
        profiles[str(data["id"])] = data
    return profiles


def profile_text(profile: dict[str, Any], with_comments: bool = False) -> str:
    """English text of a profile: name, tagline, tags and facets (and comments)."""
    facets = profile.get("facets") or {}
    parts = [str(profile.get("name", "")), str(profile.get("tagline", ""))]
    parts += [str(t) for t in profile.get("tags") or []]
    parts += [str(facets.get(f, "")) for f in FACETS]
    if with_comments and "_path" in profile:
        raw = Path(profile["_path"]).read_text(encoding="utf-8")
        parts += [ln.lstrip("# ") for ln in raw.splitlines() if ln.lstrip().startswith("#")]
    return "\n".join(parts)


def zh_bigrams(text: str) -> set[str]:
    """All 2-character substrings of the CJK runs in ``text`` (not across punctuation)."""
    grams: set[str] = set()
    for run in CJK_RUN_RE.findall(text):
        grams.update(run[i : i + 2] for i in range(len(run) - 1))
    return grams


def distinctive_words(
    profiles_dir: Path | str, with_comments: bool = False
) -> dict[str, Distinctive]:
    """Map each celebrity id to the words that only its profile uses."""
    profiles = load_profiles(Path(profiles_dir))
    vocab = {pid: set(content_words(profile_text(p, with_comments))) for pid, p in profiles.items()}
    keys = {pid: set().union(*(stems(w) for w in ws)) for pid, ws in vocab.items()}
    result: dict[str, Distinctive] = {}
    for pid, prof in profiles.items():
        others: set[str] = set().union(*(k for o, k in keys.items() if o != pid))
        d = Distinctive()
        for w in sorted(vocab[pid]):
            if not stems(w) & others:
                d.words.update((k, w) for k in stems(w))
        for key in ("name", "name_zh"):
            if prof.get(key):
                d.phrases.add(str(prof[key]).lower())
        d.phrases.add(pid.lower())
        d.phrases |= zh_bigrams(str(prof.get("tagline_zh", "")))
        result[pid] = d
    return result


def load_eval_set(
    path: Path | str, known_ids: set[str] | None = None
) -> tuple[list[Item], list[str]]:
    """Parse and validate the JSONL file. Returns (items, errors)."""
    items: list[Item] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8") as fh:
        for n, raw in enumerate(fh, start=1):
            if not raw.strip():
                errors.append(f"line {n}: blank line")
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                errors.append(f"line {n}: invalid JSON ({exc.msg})")
                continue
            problems = validate(obj, known_ids)
            if problems:
                errors += [f"line {n}: {p}" for p in problems]
                continue
            key = re.sub(r"\s+", " ", obj["text"].strip().lower())
            if key in seen:
                errors.append(f"line {n}: duplicate of line {seen[key]}")
            seen.setdefault(key, n)
            items.append(
                Item(
                    n, obj["text"], obj["label"], list(obj["also"]), obj["lang"], obj["difficulty"]
                )
            )
    return items, errors


def validate(obj: Any, known_ids: set[str] | None) -> list[str]:
    """Problems with one decoded line (empty list if it is fine)."""
    if not isinstance(obj, dict):
        return ["not a JSON object"]
    if set(obj) != KEYS:
        return [f"keys must be exactly {sorted(KEYS)}, got {sorted(obj)}"]
    p: list[str] = []
    text, label, also = obj["text"], obj["label"], obj["also"]
    if not isinstance(text, str) or not text.strip():
        p.append("text must be a non-empty string")
    if not isinstance(label, str) or (known_ids is not None and label not in known_ids):
        p.append(f"unknown label {label!r}")
    if not isinstance(also, list) or not all(isinstance(a, str) for a in also):
        p.append("also must be a list of ids")
    else:
        if known_ids is not None:
            p += [f"unknown id in also: {a!r}" for a in also if a not in known_ids]
        if label in also:
            p.append("also contains the label")
        if len(set(also)) != len(also):
            p.append("also has duplicates")
        if obj["difficulty"] == "ambiguous" and not also:
            p.append("ambiguous item needs at least one id in also")
    if obj["lang"] not in LANGS:
        p.append(f"lang must be one of {LANGS}")
    if obj["difficulty"] not in DIFFICULTIES:
        p.append(f"difficulty must be one of {DIFFICULTIES}")
    if not p:
        p += check_text_shape(text, obj["lang"])
    return p


def check_text_shape(text: str, lang: str) -> list[str]:
    """Script matches ``lang`` and length is 8-60 words (2 CJK chars ~ 1 word)."""
    cjk = len(CJK_RE.findall(text))
    latin = len(LATIN_WORD_RE.findall(text))
    p: list[str] = []
    if lang == "en" and cjk:
        p.append("lang 'en' but text contains Chinese characters")
    if lang == "zh" and (not cjk or latin):
        p.append("lang 'zh' needs Chinese text without Latin words")
    if lang == "mixed" and not (cjk and latin):
        p.append("lang 'mixed' needs both Chinese and Latin words")
    size = latin + cjk / 2
    if not MIN_WORDS <= size <= MAX_WORDS:
        p.append(f"length {size:g} words outside {MIN_WORDS}-{MAX_WORDS}")
    return p


def find_leaks(text: str, d: Distinctive) -> list[str]:
    """Distinctive words / phrases of one celebrity found in ``text``."""
    hits = [w for w in content_words(text) if stems(w) & d.words.keys()]
    low = text.lower()
    for ph in sorted(d.phrases):
        if CJK_RE.search(ph):
            found = ph in low
        else:  # Latin names / ids: whole words only
            found = re.search(rf"(?<![a-z]){re.escape(ph)}(?![a-z])", low) is not None
        if found:
            hits.append(ph)
    return list(dict.fromkeys(hits))


def leaks(
    items: list[Item], words: dict[str, Distinctive], include_also: bool = False
) -> list[tuple[int, str, str]]:
    """(line, celebrity id, word) for every text that uses its own label's words."""
    out: list[tuple[int, str, str]] = []
    for it in items:
        for pid in [it.label, *(it.also if include_also else [])]:
            if pid in words:
                out += [(it.line, pid, w) for w in find_leaks(it.text, words[pid])]
    return out


def count_problems(items: list[Item], ids: list[str]) -> tuple[list[str], list[str]]:
    """(errors, warnings) about the size and balance of the set."""
    errors: list[str] = []
    warnings: list[str] = []
    total = len(items)
    if total < MIN_TOTAL:
        errors.append(f"only {total} items, need at least {MIN_TOTAL}")
    labels = Counter(it.label for it in items)
    errors += [
        f"label {i}: {labels[i]} items, need {MIN_PER_LABEL}"
        for i in ids
        if labels[i] < MIN_PER_LABEL
    ]
    langs = Counter(it.lang for it in items)
    errors += [f"lang {k}: {langs[k]} items, need {v}" for k, v in MIN_LANG.items() if langs[k] < v]
    for k, v in TARGET_LANG.items():
        if abs(langs[k] - v) > max(5, v * 0.15):
            warnings.append(f"lang {k}: {langs[k]} items, target about {v}")
    diffs = Counter(it.difficulty for it in items)
    for k, share in TARGET_DIFFICULTY_SHARE.items():
        if total and abs(diffs[k] / total - share) > 0.05:
            warnings.append(f"difficulty {k}: {diffs[k] / total:.0%}, target about {share:.0%}")
    return errors, warnings


def counts_table(items: list[Item], ids: list[str]) -> str:
    """Counts by label x lang and by label x difficulty, with totals."""
    cols = [*LANGS, *DIFFICULTIES, "total"]
    rows = [*ids, "TOTAL"]
    width = max(len(r) for r in rows) + 2
    lines = [" " * width + "".join(f"{c:>11}" for c in cols)]
    for r in rows:
        sel = items if r == "TOTAL" else [it for it in items if it.label == r]
        lang = Counter(it.lang for it in sel)
        diff = Counter(it.difficulty for it in sel)
        vals = [lang[c] for c in LANGS] + [diff[c] for c in DIFFICULTIES] + [len(sel)]
        lines.append(f"{r:<{width}}" + "".join(f"{v:>11}" for v in vals))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("eval_set", nargs="?", type=Path, default=DEFAULT_EVAL_SET)
    ap.add_argument("profiles_dir", nargs="?", type=Path, default=DEFAULT_PROFILES)
    ap.add_argument(
        "--strict",
        action="store_true",
        help="count profile comments as profile text and check 'also' ids too",
    )
    ap.add_argument(
        "--show-words",
        action="store_true",
        help="print each celebrity's distinctive words and exit",
    )
    args = ap.parse_args(argv)

    words = distinctive_words(args.profiles_dir, with_comments=args.strict)
    if not words:
        print(f"no profiles found in {args.profiles_dir}", file=sys.stderr)
        return 2
    ids = sorted(words)
    if args.show_words:
        for pid in ids:
            print(f"{pid}: {' '.join(sorted(set(words[pid].words.values())))}")
            print(f"{'':{len(pid)}}  phrases: {' '.join(sorted(words[pid].phrases))}")
        return 0

    items, errors = load_eval_set(args.eval_set, set(ids))
    leak_list = leaks(items, words, include_also=args.strict)
    count_errors, warnings = count_problems(items, ids)

    for e in errors:
        print(f"MALFORMED {e}")
    for line, pid, w in leak_list:
        print(f"LEAK line {line}: {w!r} is distinctive of {pid}")
    print(counts_table(items, ids))
    for w in warnings:
        print(f"warning: {w}")
    for e in count_errors:
        print(f"COUNT {e}")

    failed = bool(errors or leak_list or count_errors)
    print(
        f"\n{len(items)} valid items, {len(errors)} malformed, {len(leak_list)} leaks: "
        f"{'FAIL' if failed else 'OK'}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
