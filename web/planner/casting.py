"""Casting: choose a campaign's faces from a pool of candidates, swap one, make them the roster.

The planner picks a brief and a pool (a sample from ``pools/``, or files
they upload), and the page shows the set :mod:`matcher.casting` chooses: the
facet of the brief each face embodies with the quote from their profile that
shows it, and the coverage of every facet as a chart (:mod:`web.charts`).
Swapping a face for another candidate shows the coverage before and after.
"Make this the campaign's roster" publishes the chosen profiles as the
campaign's next roster version (:func:`matcher.store.rosters.publish`).

Uploads are kept in the instance folder under their content's digest, so
the forms carry a digest, never a path; a pool's vectors are kept in the
worker and in the instance folder under the pool's digest (a pool is
embedded once, not on every swap).
A sample of shoppers is personal data: its file is read and deleted at once,
its texts are never stored or logged, and only its vectors are kept, in the
worker's memory, for the swaps that follow (another worker, or a restart,
asks for the sample again).
Pools on this page hold at most :data:`MAX_PAGE_POOL` candidates: larger ones
are cast with ``matcher cast``.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from werkzeug.datastructures import FileStorage
from werkzeug.wrappers import Response as BaseResponse

from matcher.casting import (
    BriefError,
    Casting,
    CastingProblem,
    parse_brief,
    parse_pool_lines,
    prepare,
)
from matcher.casting.brief import MAX_K
from matcher.casting.pool import cached_pool_vectors
from matcher.errors import InputError, MatcherError, ProfileError
from matcher.store.rosters import publish

from ..campaigns import current_campaign, database, refresh_campaign
from ..charts import Bar, bar_chart
from ..i18n import select_locale
from ..security import check_form_post
from .base import bp, lang_args, logged_in_user

#: The sample pools shipped with the matcher: one folder each, with brief.yaml and candidates.jsonl.
SAMPLES = Path(__file__).resolve().parents[2] / "pools"
BRIEF_FILE = "brief.yaml"
POOL_FILE = "candidates.jsonl"
MAX_BRIEF_BYTES = 64 * 1024
MAX_POOL_BYTES = 8 * 1024 * 1024
#: Pools the page embeds while the planner waits; larger ones go through ``matcher cast``.
MAX_PAGE_POOL = 500
#: Pools whose vectors a worker keeps.
CACHED_POOLS = 8
UPLOAD_KEY = re.compile(r"^u-([0-9a-f]{64})$")
SAMPLE_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
CACHE_KEY = "matcher.casting_vectors"
SHOPPERS_KEY = "matcher.casting_shoppers"
SHOPPER_KEY = re.compile(r"^s-([0-9a-f]{64})$")
#: Shopper texts a page's sample may hold (each is embedded while the planner waits).
MAX_PAGE_SHOPPERS = 500
MAX_SHOPPER_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Source:
    """A brief or pool the forms name: a sample's folder name or ``u-<digest>`` of an upload."""

    key: str
    name: str
    raw: bytes


class SourceError(Exception):
    """The form names a brief or pool that cannot be used; the message says which and why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def samples_root() -> Path:
    return Path(current_app.config.get("MATCHER_CASTING_SAMPLES") or SAMPLES)


def sample_names() -> list[str]:
    """The sample pools: folders holding both a brief and a pool."""
    root = samples_root()
    if not root.is_dir():
        return []
    return sorted(
        folder.name
        for folder in root.iterdir()
        if SAMPLE_KEY.match(folder.name)
        and (folder / BRIEF_FILE).is_file()
        and (folder / POOL_FILE).is_file()
    )


def uploads_folder() -> Path:
    return Path(current_app.instance_path) / "casting"


def _source(kind: str, key: str) -> Source:
    """The brief or pool a form names.

    Raises:
        SourceError: no such sample or upload.
    """
    file_name = BRIEF_FILE if kind == "brief" else POOL_FILE
    found = UPLOAD_KEY.match(key)
    if found:
        path = uploads_folder() / f"{found.group(1)}.{kind}"
        if path.is_file():
            name = (uploads_folder() / f"{found.group(1)}.{kind}.name").read_text("utf-8")
            return Source(key, name, path.read_bytes())
    elif SAMPLE_KEY.match(key) and key in sample_names():
        path = samples_root() / key / file_name
        return Source(key, f"{key}/{file_name}", path.read_bytes())
    message = gettext("That brief is no longer available: upload it again.")
    if kind == "pool":
        message = gettext("That pool is no longer available: upload it again.")
    raise SourceError(kind, message)


def _save_upload(kind: str, upload: FileStorage, limit: int) -> Source:
    """Keep an uploaded brief or pool under its digest.

    Raises:
        SourceError: empty or too large.
    """
    raw = upload.stream.read(limit + 1)
    if len(raw) > limit:
        raise SourceError(
            kind,
            gettext("That file is too large: at most %(n)d KB.", n=limit // 1024),
        )
    if not raw.strip():
        raise SourceError(kind, gettext("That file is empty."))
    digest = hashlib.sha256(raw).hexdigest()
    folder = uploads_folder()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{digest}.{kind}").write_bytes(raw)
    name = Path(upload.filename or kind).name[:120] or kind
    (folder / f"{digest}.{kind}.name").write_text(name, "utf-8")
    return Source(f"u-{digest}", name, raw)


def _chosen_source(kind: str, limit: int) -> Source:
    """The brief or pool of a cast form: an upload when one is given, else the chosen sample."""
    upload = request.files.get(f"{kind}_file")
    if upload is not None and upload.filename:
        return _save_upload(kind, upload, limit)
    return _source(kind, request.form.get(f"{kind}_key", ""))


_lock = threading.Lock()


def _vectors(pool_source: Source, problem_pool: Any) -> Any:
    """The pool's vectors, embedded once per pool and model."""
    encoder = current_app.extensions["matcher"].encoder
    key = (hashlib.sha256(pool_source.raw).hexdigest(), encoder.model_id)
    cache: OrderedDict[tuple[str, str], Any] = current_app.extensions.setdefault(
        CACHE_KEY, OrderedDict()
    )
    with _lock:
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
    # Kept on disk too (pool vectors hold no personal data): other workers and restarts reuse them.
    vectors = cached_pool_vectors(problem_pool.profiles, encoder, uploads_folder() / "vectors")
    with _lock:
        cache[key] = vectors
        while len(cache) > CACHED_POOLS:
            cache.popitem(last=False)
    return vectors


def _shopper_cache() -> OrderedDict[str, Any]:
    cache: OrderedDict[str, Any] = current_app.extensions.setdefault(SHOPPERS_KEY, OrderedDict())
    return cache


def _read_shopper_upload(upload: FileStorage) -> str:
    """Embed an uploaded sample of shoppers; keep its vectors in memory, never its texts.

    Returns:
        The key the forms carry (``s-<digest>``).

    Raises:
        SourceError: the file cannot be read, or holds no usable or too many texts.
    """
    from matcher.batch import read_shoppers
    from matcher.batch_rows import BadRow
    from matcher.casting import shopper_vectors
    from matcher.errors import BatchInputError

    raw = upload.stream.read(MAX_SHOPPER_BYTES + 1)
    if len(raw) > MAX_SHOPPER_BYTES:
        raise SourceError(
            "shoppers",
            gettext("That file is too large: at most %(n)d KB.", n=MAX_SHOPPER_BYTES // 1024),
        )
    name = Path(upload.filename or "shoppers.csv").name[:120]
    folder = uploads_folder()
    folder.mkdir(parents=True, exist_ok=True)
    spool = folder / f".shoppers-{hashlib.sha256(raw).hexdigest()}{Path(name).suffix[:8]}"
    spool.write_bytes(raw)
    try:
        texts = [row.text for row in read_shoppers(spool, name=name) if not isinstance(row, BadRow)]
    except BatchInputError as exc:
        raise SourceError("shoppers", str(exc)) from None
    finally:
        spool.unlink(missing_ok=True)
    if not texts:
        raise SourceError("shoppers", gettext("That file holds no usable shopper text."))
    if len(texts) > MAX_PAGE_SHOPPERS:
        raise SourceError(
            "shoppers",
            gettext("This page takes up to %(n)d shoppers.", n=MAX_PAGE_SHOPPERS),
        )
    vectors = shopper_vectors(texts, current_app.extensions["matcher"].encoder)
    key = "s-" + hashlib.sha256(vectors.tobytes()).hexdigest()
    cache = _shopper_cache()
    with _lock:
        cache[key] = vectors
        while len(cache) > CACHED_POOLS:
            cache.popitem(last=False)
    return key


def _shoppers(key: str) -> Any:
    """The vectors of a sample a form names (``""``: none).

    Raises:
        SourceError: this worker no longer holds that sample.
    """
    if not key:
        return None
    with _lock:
        vectors = _shopper_cache().get(key) if SHOPPER_KEY.match(key) else None
    if vectors is None:
        raise SourceError(
            "shoppers",
            gettext("That sample of shoppers is no longer held here: upload it again."),
        )
    return vectors


def _problem(
    brief_source: Source, pool_source: Source, k: int | None, shoppers_key: str = ""
) -> CastingProblem:
    """The casting problem for a brief and a pool.

    Raises:
        BriefError, ProfileError: the brief or the pool has problems.
        SourceError: the pool is too large for this page.
    """
    brief = parse_brief(brief_source.name, brief_source.raw)
    if k is not None:
        brief = brief.with_k(k)
    pool = parse_pool_lines(pool_source.name, pool_source.raw)
    if len(pool) > MAX_PAGE_POOL:
        raise SourceError(
            "pool",
            gettext(
                "This page casts pools of up to %(n)d candidates: use matcher cast for more.",
                n=MAX_PAGE_POOL,
            ),
        )
    encoder = current_app.extensions["matcher"].encoder
    return prepare(
        brief,
        pool,
        encoder,
        vectors=_vectors(pool_source, pool),
        embedded_shoppers=_shoppers(shoppers_key),
    )


def _k(raw: str) -> int | None:
    """The form's number of faces (blank: the brief's).

    Raises:
        SourceError: not a whole number from 1 to the most a brief may ask for.
    """
    raw = raw.strip()
    if not raw:
        return None
    # ASCII digits, a few of them: "²" is a digit to isdigit(), and int() refuses
    # a string of thousands of digits.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4) or not 1 <= int(raw) <= MAX_K:
        raise SourceError("k", gettext("Choose a whole number from 1 to %(n)d.", n=MAX_K))
    return int(raw)


def _lang() -> str:
    return "zh" if select_locale() == "zh" else "en"


def coverage_chart(casting: Casting, chart_id: str, title: str) -> Any:
    """The coverage of each facet (0 to 100) as the project's bar chart."""
    bars = [
        Bar(entry.facet, entry.facet.replace("_", " "), round(100 * entry.coverage))
        for entry in casting.coverage
    ]
    description = gettext(
        "Coverage of each facet of the brief, from 0 (the pool's median candidate) "
        "to 100 (the pool's best candidate for that facet)."
    )
    return bar_chart(bars, chart_id=chart_id, title=title, description=description)


def _page(
    *,
    form: dict[str, str],
    problem: CastingProblem | None = None,
    casting: Casting | None = None,
    before: Casting | None = None,
    errors: dict[str, str] | None = None,
    problems: list[str] | None = None,
) -> str:
    chart = None
    others: list[tuple[str, str]] = []
    changes: list[dict[str, Any]] = []
    if casting is not None and problem is not None:
        chart = coverage_chart(casting, "coverage-chart", gettext("Coverage of each facet"))
        chosen = set(casting.ids)
        others = [
            (p.id, f"{p.name} {p.name_zh}") for p in problem.pool.profiles if p.id not in chosen
        ]
        if before is not None:
            earlier = {entry.facet: entry for entry in before.coverage}
            changes = [
                {
                    "facet": entry.facet,
                    "before": earlier[entry.facet].coverage,
                    "after": entry.coverage,
                    "change": round(entry.coverage - earlier[entry.facet].coverage, 4),
                }
                for entry in casting.coverage
            ]
    return render_template(
        "planner/casting.html",
        form=form,
        samples=sample_names(),
        problem=problem,
        casting=casting,
        before=before,
        changes=changes,
        chart=chart,
        others=others,
        errors=errors or {},
        problems=problems or [],
        max_pool=MAX_PAGE_POOL,
        max_shoppers=MAX_PAGE_SHOPPERS,
    )


def _default_form() -> dict[str, str]:
    names = sample_names()
    first = "lueur" if "lueur" in names else (names[0] if names else "")
    return {"brief_key": first, "pool_key": first, "k": "", "method": "greedy", "shoppers_key": ""}


def _refused(form: dict[str, str], exc: Exception) -> tuple[str, int]:
    """The page again with what is wrong with the brief, the pool or the form."""
    if isinstance(exc, SourceError):
        return _page(form=form, errors={exc.field: str(exc)}), 400
    if isinstance(exc, BriefError | ProfileError):
        return _page(form=form, problems=[str(p) for p in exc.problems]), 400
    return _page(form=form, errors={"form": str(exc)}), 400


@bp.get("/casting")
def casting() -> str:
    return _page(form=_default_form())


@bp.post("/casting")
def cast() -> tuple[str, int]:
    """Cast the chosen brief and pool: the set, each face explained, the coverage."""
    check_form_post()
    form = {
        **_default_form(),
        **{key: request.form.get(key, "") for key in ("brief_key", "pool_key", "k")},
    }
    form["method"] = "exact" if request.form.get("method") == "exact" else "greedy"
    try:
        brief_source = _chosen_source("brief", MAX_BRIEF_BYTES)
        pool_source = _chosen_source("pool", MAX_POOL_BYTES)
        form["brief_key"], form["pool_key"] = brief_source.key, pool_source.key
        form["brief_name"], form["pool_name"] = brief_source.name, pool_source.name
        upload = request.files.get("shoppers_file")
        if upload is not None and upload.filename:
            form["shoppers_key"] = _read_shopper_upload(upload)
        problem = _problem(brief_source, pool_source, _k(form["k"]), form["shoppers_key"])
        casting = problem.solve(method=form["method"], lang=_lang())
    except (SourceError, MatcherError) as exc:
        return _refused(form, exc)
    return _page(form=form, problem=problem, casting=casting), 200


def _posted_set() -> tuple[dict[str, str], CastingProblem, list[str]]:
    """The brief, pool and set a swap or roster form carries.

    Raises:
        SourceError, MatcherError: they cannot be used.
    """
    form = {
        key: request.form.get(key, "") for key in ("brief_key", "pool_key", "k", "shoppers_key")
    }
    form["method"] = "greedy"
    brief_source = _source("brief", form["brief_key"])
    pool_source = _source("pool", form["pool_key"])
    form["brief_name"], form["pool_name"] = brief_source.name, pool_source.name
    problem = _problem(brief_source, pool_source, _k(form["k"]), form["shoppers_key"])
    ids = request.form.getlist("id")
    if not ids or len(ids) > MAX_K:
        raise InputError(gettext("The set of faces is missing: cast again."))
    return form, problem, ids


@bp.post("/casting/swap")
def swap() -> tuple[str, int]:
    """Put another candidate in place of one face; show the coverage before and after."""
    check_form_post()
    form = _default_form()
    try:
        form, problem, ids = _posted_set()
        before = problem.evaluate(ids, lang=_lang())
    except (SourceError, MatcherError) as exc:
        return _refused(form, exc)
    out, into = request.form.get("out", ""), request.form.get("in", "")
    errors: dict[str, str] = {}
    after: Casting | None = None
    if out not in ids:
        errors["out"] = gettext("Choose a face of the set to take out.")
    if not into or into in ids:
        errors["in"] = gettext("Choose a candidate who is not in the set yet.")
    try:
        if not errors:
            after = problem.evaluate([into if i == out else i for i in ids], lang=_lang())
    except MatcherError as exc:
        errors["in"] = str(exc)
    if after is None:
        return _page(form=form, problem=problem, casting=before, errors=errors), 400
    return _page(form=form, problem=problem, casting=after, before=before), 200


@bp.post("/casting/roster")
def make_roster() -> BaseResponse | tuple[str, int]:
    """Publish the set as the campaign's roster (its next version)."""
    check_form_post()
    form = _default_form()
    try:
        form, problem, ids = _posted_set()
        chosen = problem.evaluate(ids)
    except (SourceError, MatcherError) as exc:
        return _refused(form, exc)
    campaign = current_campaign()
    profiles = [problem.pool.profiles[problem.pool.position(i)] for i in chosen.ids]
    note = gettext(
        "Cast from %(pool)s for %(brief)s", pool=form["pool_name"], brief=form["brief_name"]
    )
    try:
        version = publish(
            database(), campaign.id, profiles, author=logged_in_user() or "planner", note=note
        )
    except (InputError, ProfileError) as exc:
        return _page(form=form, problem=problem, casting=chosen, errors={"form": str(exc)}), 400
    try:
        refresh_campaign(campaign)
    except MatcherError as exc:
        flash(
            gettext("Published, but this server cannot load it yet: %(problem)s", problem=str(exc))
        )
    else:
        flash(
            gettext(
                "These %(n)d faces are now the campaign's roster (version %(number)d).",
                n=len(profiles),
                number=version.number,
            )
        )
    return redirect(url_for("planner.roster", **lang_args()), 303)
