"""One-click unsubscribe (RFC 8058) and the unsubscribe page of every list email, with the
Undo of leaving a topic. Part of the readers blueprint (``/u/<token>``)."""

from __future__ import annotations

from flask import render_template, request

from newsletter.content import service as content
from newsletter.extensions import csrf
from newsletter.subscribers import rejoin as topic_rejoin
from newsletter.subscribers import service, streams
from newsletter.subscribers.tokens import TokenInvalid
from newsletter.validation import InvalidInput
from newsletter.web.actors import request_actor
from newsletter.web.public.readers import bp, link_problem
from newsletter.wiring import reader_services


@bp.route("/u/<token>", methods=["GET", "POST"])
@csrf.exempt
def unsubscribe(token: str):
    """GET (and HEAD) shows the choices and never unsubscribes (link scanners follow GETs).
    POST with ``List-Unsubscribe=One-Click`` (RFC 8058: form-urlencoded or multipart, no
    cookie, no CSRF token) leaves the stream the link was sent in (digests, or special
    editions; everything for a link without one); ``leave=everything`` leaves everything;
    ``topic=<slug>`` leaves one topic. Always 200 on success, no redirect.
    """
    services = reader_services()
    try:
        reader, stream = streams.unsubscribe_link(services, token)
    except service.LinkNoLongerValid:
        # Erased readers get nothing anyway: answer as if it worked.
        return render_template("readers/unsubscribed.html", reader=None, topic=None,
                               stream=None)
    except TokenInvalid as exc:
        return link_problem(exc)

    def page(problem=None, status=200):
        return render_template("readers/unsubscribe.html", reader=reader, token=token,
                               stream=stream, problem=problem), status

    if request.method != "POST":  # GET and HEAD (Flask answers HEAD with the GET view)
        return page()
    rejoin = request.form.get("rejoin")
    if rejoin:  # "Undo" on the page that said which topic they left
        try:
            topic = topic_rejoin.rejoin_topic(services, reader, rejoin[:80], request_actor(
                "unsubscribe-page"))
        except InvalidInput as exc:
            return page(exc.errors[0].message, 400)
        return render_template("readers/unsubscribed.html", reader=reader, topic=None,
                               stream=None, rejoined=topic, token=token)
    topic = request.form.get("topic")
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    everything = request.form.get("leave") == "everything"
    if not (one_click or everything or topic):
        return page("Choose what to unsubscribe from.", 400)
    if topic and not (one_click or everything) \
            and topic not in {link.topic.slug for link in reader.followed}:
        return page("You do not follow that topic.", 400)
    source = "one-click" if one_click and "Origin" not in request.headers else "unsubscribe-page"
    actor = request_actor(source)
    left_stream = None
    if one_click and stream is not None:
        streams.leave_stream(services, reader, stream, actor)
        left_stream, topic = stream, None
    elif one_click or everything:
        service.unsubscribe(services, reader, actor)
        topic = None
    else:
        service.unsubscribe(services, reader, actor, topic)
    return render_template("readers/unsubscribed.html", reader=reader, token=token,
                           topic=_topic_named(topic), stream=left_stream)


def _topic_named(slug: str | None):
    """The topic a reader just left, by its slug (for its name on the page), or None."""
    return content.get_topic(slug[:80]) if slug else None
