"""Content in the admin area: syntheses (list, search, edit, publish, unpublish) and topics
(create, rename, describe, reorder, mark premium)."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for

from newsletter.accounts.roles import Permission, may
from newsletter.content import editing
from newsletter.content import service as content
from newsletter.content import topics as topic_admin
from newsletter.content.models import Synthesis, SynthesisStatus, Topic
from newsletter.content.validation import InvalidSynthesis
from newsletter.db import db
from newsletter.subscribers import stats as reader_stats
from newsletter.web.admin import bp, record, requires
from newsletter.web.pagination import NO_SUCH_PAGE, page_number


def _synthesis_or_404(synthesis_id: int) -> Synthesis:
    found = db.session.get(Synthesis, synthesis_id) if synthesis_id < 2**62 else None
    if found is None:
        abort(404, "There is no such synthesis.")
    return found


def _topic_or_404(topic_id: int) -> Topic:
    found = db.session.get(Topic, topic_id) if topic_id < 2**62 else None
    if found is None:
        abort(404, "There is no such topic.")
    return found


@bp.route("/content")
@requires(Permission.READ)
def syntheses():
    page = page_number()
    # PostgreSQL refuses a NUL inside text, and no title holds one
    query = request.args.get("q", "")[:200].replace("\x00", "")
    status = request.args.get("status", "")
    if status not in {"", *(s.value for s in SynthesisStatus)}:
        abort(400, "The status is draft or published.")
    topic = content.get_topic(request.args.get("topic", "")[:80]) \
        if request.args.get("topic") else None
    found = editing.search_syntheses(query, status or None, topic, page)
    pages = max(1, -(-found.total // editing.PAGE))
    if page > pages:
        abort(404, NO_SUCH_PAGE)
    return render_template("admin/syntheses.html", found=found, q=query, status=status,
                           topic=topic, topics=content.list_topics(), page=page,
                           pages=pages)


@bp.route("/content/<int:synthesis_id>", methods=["GET", "POST"])
@requires(Permission.READ)
def synthesis_edit(synthesis_id: int):
    synthesis = _synthesis_or_404(synthesis_id)
    values, errors, status = editing.form_values(synthesis), {}, 200
    if request.method == "POST":
        if not may(g.admin.role, Permission.CONTENT):
            abort(403, "Your role may not edit content.")
        form = {name: request.form.get(name, "") for name in editing.EDITABLE}
        form["mentions"] = request.form.get("mentions", "")
        form["topics"] = request.form.getlist("topics")
        try:
            editing.edit_synthesis(synthesis, form, request.form.get("version", ""))
        except InvalidSynthesis as exc:
            values = {**form, "version": request.form.get("version", "")}
            errors = {e.field.split("[")[0]: e.message for e in exc.errors}
            status = 422
        except editing.EditConflict:
            db.session.refresh(synthesis)
            values = {**form, "version": request.form.get("version", "")}
            errors = {"(form)": "Someone else saved this synthesis after you opened it. "
                                "Your changes are below and were not saved; reload the "
                                "page to see theirs."}
            status = 409
        else:
            record("edited synthesis", f"synthesis {synthesis.id}", title=synthesis.title)
            flash(f"Saved “{synthesis.title}”.")
            return redirect(url_for("admin.synthesis_edit", synthesis_id=synthesis.id), 303)
    return render_template("admin/synthesis.html", synthesis=synthesis, values=values,
                           errors=errors, topics=content.list_topics()), status


@bp.route("/content/<int:synthesis_id>/status", methods=["POST"])
@requires(Permission.CONTENT)
def synthesis_status(synthesis_id: int):
    synthesis = _synthesis_or_404(synthesis_id)
    wanted = request.form.get("status", "")
    if wanted not in {s.value for s in SynthesisStatus}:
        abort(400, "The status is draft or published.")
    publish = wanted == SynthesisStatus.PUBLISHED.value
    if editing.set_published(synthesis, publish):
        record("published synthesis" if publish else "unpublished synthesis",
               f"synthesis {synthesis.id}", title=synthesis.title)
        flash(f"“{synthesis.title}” is {'published' if publish else 'a draft again'}.")
    return redirect(request.form.get("back") == "list" and url_for("admin.syntheses")
                    or url_for("admin.synthesis_edit", synthesis_id=synthesis.id), 303)


# -- topics --------------------------------------------------------------------------------

def _topics_page(errors=None, values=None, status=200):
    followers = {row["topic"]: row for row in reader_stats.by_topic_and_tier()}
    return render_template("admin/topics.html", topics=content.list_topics(),
                           followers=followers, errors=errors or {}, values=values or {}), status


@bp.route("/topics", methods=["GET", "POST"])
@requires(Permission.READ)
def topics():
    if request.method != "POST":
        return _topics_page()
    if not may(g.admin.role, Permission.TOPICS):
        abort(403, "Only owners manage topics.")
    form = {"name": request.form.get("name", ""),
            "description": request.form.get("description", ""),
            "premium": request.form.get("premium") == "on"}
    try:
        topic = topic_admin.create_topic(form["name"], form["description"], form["premium"])
    except topic_admin.InvalidTopic as exc:
        return _topics_page({e.field: e.message for e in exc.errors}, form, 422)
    record("created topic", f"topic {topic.slug}", name=topic.name, premium=topic.premium)
    flash(f"Added the topic “{topic.name}” ({topic.slug}).")
    return redirect(url_for("admin.topics"), 303)


@bp.route("/topics/<int:topic_id>", methods=["POST"])
@requires(Permission.TOPICS)
def topic_change(topic_id: int):
    topic = _topic_or_404(topic_id)
    move = request.form.get("move", "")
    if move:
        if move not in ("up", "down"):
            abort(400, "A topic moves up or down.")
        if topic_admin.move_topic(topic, -1 if move == "up" else 1):
            record("moved topic", f"topic {topic.slug}", direction=move)
        return redirect(url_for("admin.topics", _anchor=f"topic-{topic.id}"), 303)
    was_premium = topic.premium
    try:
        changed = topic_admin.update_topic(
            topic, request.form.get("name", ""), request.form.get("description", ""),
            request.form.get("premium") == "on")
    except topic_admin.InvalidTopic as exc:
        errors = {f"{topic.id}.{e.field}": e.message for e in exc.errors}
        return _topics_page(errors, None, 422)
    if changed:
        record("changed topic", f"topic {topic.slug}", fields=changed, name=topic.name,
               premium=topic.premium)
        message = f"Saved “{topic.name}”."
        if topic.premium and not was_premium:
            free = next((row["free"] for row in reader_stats.by_topic_and_tier()
                         if row["topic"] == topic.name), 0)
            message += (f" It is premium now: its {free:,} free reader(s) keep it in their "
                        "preferences but no longer receive it." if free else
                        " It is premium now.")
        flash(message)
    return redirect(url_for("admin.topics", _anchor=f"topic-{topic.id}"), 303)
