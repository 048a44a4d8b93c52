"""Uploading a file of shoppers, choosing its columns, following, cancelling and downloading
its batch.

Batches run in :mod:`web.jobs`, which keeps them (state, upload, pairings) in
the database, so every worker of every server shows the same jobs and
downloads. A file is read as planners make them (:mod:`matcher.batch_input`:
CSV in any encoding Excel writes, semicolons, ``.xlsx``); when its columns are
not found by name the job page asks which is the id and which the text
before matching starts. Bad rows are shown as line and reason, never with
the shopper's text.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import (
    Response,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext, ngettext
from werkzeug.utils import secure_filename
from werkzeug.wrappers import Response as BaseResponse

from matcher.batch_input import describe_input, find_column, guess_columns, input_format
from matcher.errors import BatchInputError
from matcher.files import open_private, temporary_path
from matcher.limits import MAX_COLUMN_CHARS
from matcher.matching import DEFAULT_TOP_K
from matcher.text import without_controls

from ..campaigns import (
    batch_store,
    current_campaign,
)
from ..errors import ApiError
from ..jobs import JobView, Status
from ..pairing import current_matcher
from ..security import check_form_post
from .base import bp, job_registry, lang_args

#: What the file input accepts.
ACCEPTED = ".csv,.tsv,.xlsx,.jsonl,.ndjson"


def _column_error(value: str) -> str | None:
    if not value or len(value) > MAX_COLUMN_CHARS:
        return gettext("Give a column name of 1 to %(n)d characters.", n=MAX_COLUMN_CHARS)
    return None


def _k_or_error(raw: str, errors: dict[str, str]) -> int:
    roster_size = current_matcher().roster_size
    try:
        k = int(raw)
        if not 1 <= k <= roster_size:
            raise ValueError(raw)
    except ValueError:
        errors["top_k"] = gettext("Choose a whole number from 1 to %(n)d.", n=roster_size)
        return DEFAULT_TOP_K
    return k


def _batches_page(form: dict[str, Any], errors: dict[str, str]) -> str:
    registry = job_registry(current_app)
    return render_template(
        "planner/batches.html",
        jobs=registry.jobs(),
        form=form,
        errors=errors,
        roster_size=current_matcher().roster_size,
        retention_days=current_campaign().retention_days,
        accepted=ACCEPTED,
    )


@bp.route("/batches", methods=["GET", "POST"])
def batches() -> BaseResponse | tuple[str, int]:
    """Upload a shopper file. When its id and text columns are found by name, matching
    starts at once; otherwise the job page asks for them first.

    Once the whole file is matched, its pairings are stored for the selected
    campaign, in one transaction (without the shoppers' texts).
    """
    form: dict[str, Any] = {"top_k": DEFAULT_TOP_K, "id_column": "id", "text_column": "text"}
    if request.method == "GET":
        return _batches_page(form, {}), 200
    check_form_post()
    errors: dict[str, str] = {}
    for column in ("id_column", "text_column"):
        form[column] = request.form.get(column, form[column]).strip()
        problem = _column_error(form[column])
        if problem:
            errors[column] = problem
    form["top_k"] = request.form.get("top_k", str(DEFAULT_TOP_K)).strip()
    k = _k_or_error(form["top_k"], errors)
    upload = request.files.get("file")
    filename = ""
    if upload is None or not upload.filename:
        errors["file"] = gettext("Choose a CSV, Excel or JSON Lines file of shoppers.")
    else:
        # Stored with the job: a NUL or a control character is the browser's, not a name.
        filename = without_controls(Path(upload.filename).name)[:120] or "upload"
        try:
            input_format(filename)
        except BatchInputError:
            errors["file"] = gettext("Use a .csv, .tsv, .xlsx, .jsonl or .ndjson file of shoppers.")
    if errors or upload is None:
        return _batches_page(form, errors), 400
    registry = job_registry(current_app)
    registry._make_scratch()
    local = temporary_path(registry.scratch / f"upload{Path(filename).suffix.lower()}")
    try:
        with open_private(local, "wb") as handle:
            upload.save(handle)
        try:
            found = describe_input(local, name=filename)
        except BatchInputError as exc:
            errors["file"] = gettext("This file cannot be used: %(problem)s", problem=str(exc))
            return _batches_page(form, errors), 400
        campaign = current_campaign()
        with open(local, "rb") as saved:
            job_id = registry.create(saved, found, filename=filename, campaign=campaign.slug, k=k)
    finally:
        local.unlink(missing_ok=True)
    id_at = find_column(found.columns, form["id_column"])
    text_at = find_column(found.columns, form["text_column"])
    if found.format == "jsonl" or (id_at is not None and text_at is not None):
        id_column = form["id_column"] if found.format == "jsonl" else found.columns[id_at or 0]
        text_column = (
            form["text_column"] if found.format == "jsonl" else found.columns[text_at or 0]
        )
        _start(job_id, k, id_column, text_column)
    return redirect(url_for("planner.job", job_id=job_id, **lang_args()), 303)


def _start(job_id: str, k: int, id_column: str, text_column: str) -> bool:
    matcher = current_matcher()
    campaign = current_campaign()
    return job_registry(current_app).start(
        matcher,
        job_id,
        k=k,
        id_column=id_column,
        text_column=text_column,
        retention_days=campaign.retention_days,
        store=batch_store(campaign, matcher),
    )


def _missing_job() -> ApiError:
    # Malformed ids get the same answer: the registry never looks them up.
    return ApiError(
        404,
        "no_such_batch",
        gettext(
            "There is no such batch: the link may be wrong, or the batch is old and "
            "no longer listed. Upload the file again."
        ),
    )


def _found(job_id: str) -> JobView:
    found = job_registry(current_app).get(job_id)
    if found is None:
        raise _missing_job()
    return found


def time_left(seconds: float | None) -> str:
    """The time left, as a planner reads it ("about 4 minutes left")."""
    if seconds is None:
        return gettext("working out the time left…")
    if seconds < 60:
        return gettext("less than a minute left")
    minutes = round(seconds / 60)
    if minutes < 90:
        return ngettext("about %(num)d minute left", "about %(num)d minutes left", minutes)
    return ngettext("about %(num)d hour left", "about %(num)d hours left", round(minutes / 60))


def _job_page(
    found: JobView, errors: dict[str, str] | None = None, status: int = 200
) -> tuple[str, int]:
    guessed_id, guessed_text = guess_columns(found.columns)
    k = request.form.get("top_k") or str(found.top_k)
    return (
        render_template(
            "planner/job.html",
            job=found,
            time_left=time_left(found.eta_seconds),
            expires_on=(
                datetime.fromtimestamp(found.expires_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
                if found.expires_at
                else ""
            ),
            errors=errors or {},
            guessed_id=request.form.get("id_column") or guessed_id,
            guessed_text=request.form.get("text_column") or guessed_text,
            top_k=k,
            roster_size=current_matcher().roster_size,
        ),
        status,
    )


@bp.get("/batches/<job_id>")
def job(job_id: str) -> tuple[str, int]:
    """The column choice (when needed), progress with the time left while running (the
    page reloads itself), then the download and the bad rows."""
    return _job_page(_found(job_id))


@bp.post("/batches/<job_id>/start")
def start_job(job_id: str) -> BaseResponse | tuple[str, int]:
    """Start a job with the columns the planner chose among the file's."""
    check_form_post()
    found = _found(job_id)
    if found.status is not Status.MAPPING:
        return redirect(url_for("planner.job", job_id=job_id, **lang_args()), 303)
    errors: dict[str, str] = {}
    choice = {}
    for column in ("id_column", "text_column"):
        value = request.form.get(column, "").strip()
        if value not in found.columns:
            errors[column] = gettext("Choose one of the file's columns.")
        choice[column] = value
    if not errors and choice["id_column"] == choice["text_column"]:
        errors["text_column"] = gettext("The text column must differ from the id column.")
    k = _k_or_error(request.form.get("top_k", str(DEFAULT_TOP_K)).strip(), errors)
    if errors:
        return _job_page(found, errors, 400)
    _start(job_id, k, choice["id_column"], choice["text_column"])
    return redirect(url_for("planner.job", job_id=job_id, **lang_args()), 303)


@bp.post("/batches/<job_id>/cancel")
def cancel_job(job_id: str) -> BaseResponse:
    """Cancel a job that is not over; a running one stops within about a second."""
    check_form_post()
    if job_registry(current_app).cancel(job_id) is None:
        raise _missing_job()
    return redirect(url_for("planner.job", job_id=job_id, **lang_args()), 303)


@bp.get("/batches/<job_id>/pairings.csv")
def download(job_id: str) -> Response:
    """The pairings, as often as needed until the campaign's retention period ends.

    Any server can send them: they are kept in the database.
    """
    registry = job_registry(current_app)
    found = _found(job_id)
    if not found.finished:
        raise ApiError(409, "batch_running", gettext("This batch is still running."))
    if found.status is not Status.DONE:
        raise ApiError(
            409,
            "batch_failed",
            gettext("This batch did not finish, so it has no pairings. Upload the file again."),
        )
    blocks = registry.pairings(job_id)
    if blocks is None:
        raise ApiError(
            410,
            "pairings_gone",
            gettext(
                "These pairings were deleted at the end of the campaign's retention period. "
                "Upload the file again."
            ),
        )
    stem = secure_filename(Path(found.filename).stem) or "shoppers"

    def body() -> Iterator[bytes]:
        yield from blocks

    return Response(
        body(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{stem}-pairings.csv"'},
    )
