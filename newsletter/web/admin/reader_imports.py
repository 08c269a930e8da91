"""Importing readers from a CSV file: upload (step 1), map the columns and give the consent
source (step 2), then the job's page: live progress while it runs, the report when done.

The upload is the one admin form that may be larger than ``MAX_CONTENT_LENGTH``: its view
raises the limit for its own request to :data:`UPLOAD_LIMIT` and checks the CSRF token
itself (the app-wide check would read the body under the small limit first). A body whose
declared length is over the limit is refused before any of it is read.
"""

from __future__ import annotations

from flask import (
    Response,
    abort,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from werkzeug.exceptions import RequestEntityTooLarge

from newsletter.accounts.roles import Permission
from newsletter.db import db
from newsletter.extensions import csrf
from newsletter.subscribers import imports
from newsletter.subscribers.import_files import ENCODINGS, ROLES
from newsletter.subscribers.models import ImportJob, ImportStatus
from newsletter.validation import InvalidInput, whole_number
from newsletter.web.admin import bp, record, requires
from newsletter.wiring import reader_services

UPLOAD_LIMIT = imports.MAX_BYTES + 64 * 1024  # the file and the form around it
TOO_LARGE = (f"The file is too large: at most {imports.MAX_BYTES // (1024 * 1024)} MB can be "
             "imported at once. Split it into smaller files.")


def _upload_page(error: str | None = None, status: int = 200):
    return render_template("admin/import_upload.html", error=error, encodings=ENCODINGS,
                           recent=imports.recent(), small=imports.SMALL,
                           limit_mb=imports.MAX_BYTES // (1024 * 1024)), status


@bp.route("/readers/import", methods=["GET", "POST"])
@requires(Permission.READERS)
def reader_import():
    if request.method != "POST":
        return _upload_page()
    if request.content_length is not None and request.content_length > UPLOAD_LIMIT:
        abort(413, TOO_LARGE)
    request.max_content_length = UPLOAD_LIMIT
    try:
        csrf.protect()
        upload = request.files.get("file")
        encoding = request.form.get("encoding", "utf-8")
    except RequestEntityTooLarge:
        abort(413, TOO_LARGE)
    if upload is None or not upload.filename:
        return _upload_page("Choose a CSV file to import.", 400)
    data = upload.read(imports.MAX_BYTES + 1)
    try:
        job = imports.create(data, upload.filename, encoding, g.admin.id, g.admin.email)
    except imports.FileTooLarge:
        abort(413, TOO_LARGE)
    except imports.UnreadableFile as exc:
        return _upload_page(str(exc), 400)
    record("uploaded reader import", f"import {job.id}", filename=job.filename,
           rows=job.total_rows)
    return redirect(url_for("admin.reader_import_job", job_id=job.id), 303)


# The upload checks its token itself, once its own size limit is set (above).
csrf.exempt(f"{__name__}.reader_import")


def _job_or_404(job_id: int) -> ImportJob:
    job = db.session.get(ImportJob, job_id)
    if job is None:
        abort(404, "There is no such import.")
    return job


def _mapping_page(job: ImportJob, has_header: bool | None = None, errors=None,
                  chosen: dict | None = None, picked: list[str] | None = None,
                  consent_source: str = "", status: int = 200):
    try:
        layout = imports.layout_of(job, has_header)
    except imports.UnreadableFile as exc:  # it was readable when uploaded; say so anyway
        abort(409, str(exc))
    return render_template(
        "admin/import_job.html", job=job, layout=layout, errors=errors or {},
        chosen=chosen if chosen is not None else {r: layout.guess.get(r) for r in ROLES},
        topics=reader_services().offered_topics(), picked=picked or [],
        consent_source=consent_source, small=imports.SMALL), status


@bp.route("/readers/import/<int:job_id>")
@requires(Permission.READ)
def reader_import_job(job_id: int):
    job = _job_or_404(job_id)
    if job.status == ImportStatus.UPLOADED.value:
        header = request.args.get("header")
        return _mapping_page(job, None if header is None else header == "1")
    return render_template("admin/import_job.html", job=job, progress=imports.progress(job),
                           problems=imports.problems(job.id), shown=500)


def _column_value(name: str) -> str:
    value = request.form.get(name, "")
    return value if isinstance(value, str) else ""


@bp.route("/readers/import/<int:job_id>/start", methods=["POST"])
@requires(Permission.READERS)
def reader_import_start(job_id: int):
    job = _job_or_404(job_id)
    has_header = request.form.get("has_header") == "yes"
    form = {"email": _column_value("email_column"), "topics": _column_value("topics_column"),
            "timezone": _column_value("timezone_column"),
            "topics_list": request.form.getlist("topics")[:100],
            "consent_source": request.form.get("consent_source", "")}
    try:
        job = imports.configure(
            reader_services(), job.id, email_column=form["email"],
            topics_column=form["topics"], timezone_column=form["timezone"],
            has_header=has_header, topics=form["topics_list"],
            consent_source=form["consent_source"])
    except InvalidInput as exc:
        db.session.rollback()
        chosen = {role: whole_number(form[role], 0, 999) for role in ROLES}
        return _mapping_page(job, has_header, {e.field: e.message for e in exc.errors},
                             chosen, form["topics_list"], form["consent_source"][:300], 400)
    except imports.ImportStateError as exc:
        flash(f"Nothing changed: {exc}.")
        return redirect(url_for("admin.reader_import_job", job_id=job_id), 303)
    record("started reader import", f"import {job.id}", rows=job.total_rows,
           consent_source=job.consent_source, topics=job.topics)
    if job.total_rows <= imports.SMALL:
        imports.run_now(reader_services(), job.id)
    else:
        flash(f"{job.total_rows:,} lines: a worker imports them; this page shows how far "
              "it has got.")
    return redirect(url_for("admin.reader_import_job", job_id=job.id), 303)


@bp.route("/readers/import/<int:job_id>/discard", methods=["POST"])
@requires(Permission.READERS)
def reader_import_discard(job_id: int):
    job = _job_or_404(job_id)
    if not imports.discard(job.id):
        flash("This import has started: it can no longer be discarded.")
        return redirect(url_for("admin.reader_import_job", job_id=job.id), 303)
    record("discarded reader import", f"import {job_id}")
    flash("The uploaded file is deleted; nothing was imported.")
    return redirect(url_for("admin.reader_import"), 303)


@bp.route("/readers/import/<int:job_id>/progress.json")
@requires(Permission.READ)
def reader_import_progress(job_id: int):
    return jsonify(imports.progress(_job_or_404(job_id)))


@bp.route("/readers/import/<int:job_id>/skipped.csv")
@requires(Permission.READERS)
def reader_import_skipped(job_id: int):
    """The skipped lines hold addresses: downloading them is for those who look after
    readers, and audited, like the export."""
    job = _job_or_404(job_id)
    if request.method == "GET":  # not HEAD: nothing is sent then, nor any query run
        record("downloaded skipped import lines", f"import {job.id}")
        response = Response(stream_with_context(imports.problem_csv(job.id)),
                            mimetype="text/csv")
    else:
        response = Response(mimetype="text/csv")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="import-{job.id}-skipped.csv"')
    return response
