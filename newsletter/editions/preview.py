"""One synthesis sent as an email to one address: the operator's check of the mail path.

It goes through exactly the pieces the delivery engine will use: the renderer (compiled once,
personalised per recipient), the message builder, DKIM and the configured transport.
"""

from __future__ import annotations

from email.utils import parseaddr
from typing import Any

from newsletter.content import service as content
from newsletter.content.models import Synthesis
from newsletter.editions.render import synthesis_dict
from newsletter.errors import Invalid
from newsletter.mail import MailSetup, SendResult, TransportError, build_message
from newsletter.mail.message import reply_to_header
from newsletter.subscribers import service as readers
from newsletter.subscribers.addresses import InvalidAddress, normalise_email


class PreviewError(Invalid):
    """The test message was not sent; the message says why, in one line."""


def synthesis_context(synthesis: Synthesis, *, base_url: str,
                      config: dict[str, Any]) -> dict[str, Any]:
    base = base_url.rstrip("/")
    return {
        "publication": config["PUBLICATION_NAME"],
        "base_url": base,
        "postal_address": config["POSTAL_ADDRESS"],
        "subject": synthesis.title,
        "synthesis": synthesis_dict(synthesis, base),
    }


def send_synthesis_email(synthesis: Synthesis, to: str, mail: MailSetup,
                         unsubscribe_url: str | None = None,
                         preferences_url: str | None = None) -> SendResult:
    """Render, build, sign and send ``synthesis`` to ``to``; raises the transport's errors.

    Pass the reader's own links when ``to`` is a reader; otherwise the message points at the
    preference centre's sign-in page and an unsubscribe address that only says so.
    """
    config = mail.config
    base = config["BASE_URL"].rstrip("/")
    rendered = mail.renderer.render(
        "synthesis", synthesis_context(synthesis, base_url=base, config=config)
    )
    unsubscribe_url = unsubscribe_url or f"{base}/u/preview"
    html, text = rendered.personalise(
        unsubscribe_url=unsubscribe_url,
        preferences_url=preferences_url or f"{base}/preferences",
        greeting="Hello,",
        email=to,
    )
    domain = config["MAIL_DOMAIN"]
    message = build_message(
        from_addr=config["MAIL_FROM"],
        to=to,
        subject=rendered.subject or synthesis.title,
        text=text,
        html=html,
        message_id_domain=domain,
        list_id=f"{config['PUBLICATION_NAME']} <test.{domain}>",
        list_unsubscribe_url=unsubscribe_url,
        extra_headers=reply_to_header(config),
    )
    if mail.signer is not None:
        message = mail.signer.sign(message)
    transport = mail.new_transport()
    try:
        return transport.send(parseaddr(config["MAIL_FROM"])[1], [to], message)
    finally:
        transport.close()


def send_test_email(raw_to: str, slug: str | None, mail: MailSetup,
                    services: readers.ReaderServices) -> tuple[Synthesis, str, SendResult]:
    """Send the synthesis ``slug`` (default: the latest) to ``raw_to`` as a test message.

    A suppressed address gets nothing; a reader gets their own unsubscribe and preference
    links. Raises ``PreviewError`` with the reason.
    """
    try:
        address = normalise_email(raw_to)
    except InvalidAddress as exc:
        raise PreviewError(f"--to: {exc}") from None
    if slug:
        synthesis = content.get_visible_synthesis(slug)
        if synthesis is None:
            raise PreviewError(f"no published synthesis with slug {slug!r}")
    else:
        latest = content.latest_syntheses(1)
        if not latest:
            raise PreviewError("nothing is published yet (try newsletter seed-demo)")
        synthesis = latest[0]
    if readers.is_suppressed(services, address):
        raise PreviewError(f"{address} is on the suppression list; nothing sent")
    links = {}
    reader = readers.find_by_email(address)
    if reader is not None:
        links = {"unsubscribe_url": services.mailer.links.unsubscribe(reader.id),
                 "preferences_url": services.mailer.links.manage(reader.id,
                                                                   in_list_mail=True)}
    try:
        result = send_synthesis_email(synthesis, address, mail, **links)
    except TransportError as exc:
        raise PreviewError(f"not sent: {exc}") from None
    return synthesis, address, result


def preview_edition(edition, mail: MailSetup, email: str) -> tuple[str, str]:
    """The edition's HTML and text as a reader at ``email`` would see them, with links that
    go nowhere personal (the preview is nobody's: unsubscribing from it does nothing)."""
    from newsletter.editions.service import render_edition

    rendered = render_edition(edition, mail)
    base = mail.config["BASE_URL"].rstrip("/")
    samples = {"unsubscribe_url": f"{base}/u/preview", "preferences_url": f"{base}/preferences",
               "greeting": "Hello,", "email": email}
    return rendered.personalise(**{name: samples.get(name, "") for name in rendered.fields})


def send_edition_test(edition, raw_to: str, mail: MailSetup) -> tuple[str, SendResult]:
    """Send the edition as it stands to ``raw_to`` (subject marked ``[Test]``), through the
    configured transport and DKIM; raises ``PreviewError`` with the reason."""
    try:
        address = normalise_email(raw_to)
    except InvalidAddress as exc:
        raise PreviewError(str(exc)) from None
    html, text = preview_edition(edition, mail, address)
    config = mail.config
    domain = config["MAIL_DOMAIN"]
    message = build_message(
        from_addr=config["MAIL_FROM"], to=address, subject=f"[Test] {edition.subject}",
        text=text, html=html, message_id_domain=domain,
        list_id=f"{config['PUBLICATION_NAME']} <test.{domain}>",
        list_unsubscribe_url=f"{config['BASE_URL'].rstrip('/')}/u/preview",
        extra_headers=reply_to_header(config))
    if mail.signer is not None:
        message = mail.signer.sign(message)
    transport = mail.new_transport()
    try:
        return address, transport.send(parseaddr(config["MAIL_FROM"])[1], [address], message)
    except TransportError as exc:
        raise PreviewError(f"not sent: {exc}") from None
    finally:
        transport.close()
