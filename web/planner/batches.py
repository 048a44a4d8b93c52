"""Uploading a file of shoppers, following its batch, and downloading the pairings.

Batches run in :mod:`web.jobs`, which keeps their state in the instance
folder, so every server worker shows the same jobs and downloads. Bad rows are
shown as line and reason, never with the shopper's text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import (
    Response,
    current_app,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext
from werkzeug.utils import secure_filename
from werkzeug.wrappers import Response as BaseResponse

from matcher.batch import check_input, input_format
from matcher.errors import BatchInputError
from matcher.limits import MAX_COLUMN_CHARS
from matcher.matching import DEFAULT_TOP_K
from matcher.text import without_controls

from ..campaigns import (
    batch_store,
    current_campaign,
)
from ..errors import ApiError
from ..jobs import Status
from ..pairing import current_matcher
from ..security import check_form_post
from .base import bp, job_registry, lang_args


def _column_error(value: str) -> str | None:
    if not value or len(value) > MAX_COLUMN_CHARS:
        return gettext("Give a column name of 1 to %(n)d characters.", n=MAX_COLUMN_CHARS)
    return None


def _batches_page(form: dict[str, Any], errors: dict[str, str]) -> str:
    registry = job_registry(current_app)
    return render_template(
        "planner/batches.html",
        jobs=registry.jobs(),
        form=form,
        errors=errors,
        roster_size=current_matcher().roster_size,
        ttl_minutes=max(1, round(registry.ttl / 60)),
    )


@bp.route("/batches", methods=["GET", "POST"])
def batches() -> BaseResponse | tuple[str, int]:
    """Upload a shopper file; matching starts in the background and the job page follows it.

    Once the whole file is matched, its pairings are stored for the selected
    campaign, in one transaction (without the shoppers' texts).
    """
    form: dict[str, Any] = {"top_k": DEFAULT_TOP_K, "id_column": "id", "text_column": "text"}
    if request.method == "GET":
        return _batches_page(form, {}), 200
    check_form_post()
    matcher = current_matcher()
    errors: dict[str, str] = {}
    for column in ("id_column", "text_column"):
        form[column] = request.form.get(column, form[column]).strip()
        problem = _column_error(form[column])
        if problem:
            errors[column] = problem
    raw_k = request.form.get("top_k", str(DEFAULT_TOP_K)).strip()
    form["top_k"] = raw_k
    k = DEFAULT_TOP_K
    try:
        k = int(raw_k)
        if not 1 <= k <= matcher.roster_size:
            raise ValueError(raw_k)
    except ValueError:
        errors["top_k"] = gettext("Choose a whole number from 1 to %(n)d.", n=matcher.roster_size)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        errors["file"] = gettext("Choose a CSV or JSON Lines file of shoppers.")
    else:
        try:
            input_format(upload.filename)
        except BatchInputError:
            errors["file"] = gettext("Use a .csv, .tsv, .jsonl or .ndjson file of shoppers.")
    if errors or upload is None or upload.filename is None:
        return _batches_page(form, errors), 400
    registry = job_registry(current_app)
    job_id, input_path, output_path = registry.paths(Path(upload.filename).suffix)
    registry.save_upload(input_path, upload)
    try:
        check_input(input_path, id_column=form["id_column"], text_column=form["text_column"])
    except BatchInputError as exc:
        input_path.unlink(missing_ok=True)
        errors["file"] = gettext("This file cannot be used: %(problem)s", problem=str(exc))
        return _batches_page(form, errors), 400
    registry.submit(
        matcher,
        job_id,
        input_path,
        output_path,
        # Stored with the pairings: a NUL or a control character is the browser's, not a name.
        filename=without_controls(upload.filename)[:120] or "upload",
        k=k,
        id_column=form["id_column"],
        text_column=form["text_column"],
        store=batch_store(current_campaign(), matcher),
    )
    return redirect(url_for("planner.job", job_id=job_id, **lang_args()), 303)


def _missing_job() -> ApiError:
    # Malformed ids get the same answer: the registry never turns them into paths.
    return ApiError(
        404,
        "no_such_batch",
        gettext(
            "There is no such batch: the link may be wrong, or the batch is old and "
            "no longer listed. Upload the file again."
        ),
    )


@bp.get("/batches/<job_id>")
def job(job_id: str) -> str:
    """Progress while running (the page reloads itself), then the download and the bad rows."""
    found = job_registry(current_app).get(job_id)
    if found is None:
        raise _missing_job()
    return render_template("planner/job.html", job=found)


@bp.get("/batches/<job_id>/pairings.csv")
def download(job_id: str) -> Response:
    """The pairings, once: the file is deleted as the download starts.

    Any worker can serve it; if two race for it, one sends the file and the
    other answers 410.
    """
    registry = job_registry(current_app)
    found = registry.get(job_id)
    if found is None:
        raise _missing_job()
    if not found.finished:
        raise ApiError(409, "batch_running", gettext("This batch is still running."))
    if found.status is Status.FAILED:
        raise ApiError(
            409,
            "batch_failed",
            gettext("This batch failed, so it has no pairings. Upload the file again."),
        )
    handle = registry.take_output(job_id)  # send_file closes it
    if handle is None:
        raise ApiError(
            410,
            "pairings_gone",
            gettext(
                "These pairings were already downloaded or have expired. Upload the file again."
            ),
        )
    stem = secure_filename(Path(found.filename).stem) or "shoppers"
    return send_file(
        handle,
        mimetype="text/csv",
        as_attachment=True,
        download_name=f"{stem}-pairings.csv",
    )
