"""Per-recipient messages from a variant's pre-encoded template: the send path's hot loop.

Per delivery this only makes the personal values (tokens, links), joins the variant's
pre-encoded byte slices with them, and signs the result. Templates are built once per
variant per process, from the variant's stored rendering.
"""

from __future__ import annotations

import json
import threading
from email.utils import parseaddr
from typing import Any

from sqlalchemy import Engine, text

from newsletter.delivery.queue import Claimed
from newsletter.delivery.tokens import DeliveryTokens, message_id_local
from newsletter.editions.render import template_from_json
from newsletter.mail.message import reply_to_header
from newsletter.mail.template import MessageTemplate
from newsletter.subscribers.mailer import Links

PERSONAL_HEADERS = ("To", "Message-ID", "List-Unsubscribe", "X-Newsletter-Token")


def ascii_address(address: str) -> str:
    """The address with its domain in IDNA (punycode) form, for headers and RCPT TO."""
    local, _, domain = address.rpartition("@")
    if domain.isascii():
        return address
    return f"{local}@{domain.encode('idna').decode('ascii')}"


class EditionComposer:
    def __init__(self, *, engine: Engine, config: dict[str, Any], signer, tokens: DeliveryTokens,
                 links: Links):
        self.engine = engine
        self.config = config
        self.signer = signer
        self.tokens = tokens
        self.links = links
        self.bounce_domain = config["BOUNCE_DOMAIN"]
        self._templates: dict[int, tuple[MessageTemplate, str]] = {}
        self._lock = threading.Lock()

    def template(self, variant_id: int) -> tuple[MessageTemplate, str]:
        """The variant's message template and its edition's kind (the stream)."""
        template = self._templates.get(variant_id)
        if template is not None:
            return template
        with self._lock:
            template = self._templates.get(variant_id)
            if template is None:
                template = self._build(variant_id)
                self._templates[variant_id] = template
        return template

    def _build(self, variant_id: int) -> tuple[MessageTemplate, str]:
        with self.engine.connect() as conn:
            row = conn.execute(text(
                "SELECT v.subject, v.html, v.text, e.id AS edition_id, e.kind "
                "FROM edition_variants v JOIN editions e ON e.id = v.edition_id "
                "WHERE v.id = :id"), {"id": variant_id}).one()
        def load(value):
            return json.loads(value) if isinstance(value, str) else value

        html, text_part = load(row.html), load(row.text)
        config = self.config
        domain = config["MAIL_DOMAIN"]
        sender = parseaddr(config["MAIL_FROM"])[1]
        return MessageTemplate.build(
            from_addr=config["MAIL_FROM"],
            subject=row.subject,
            text=template_from_json(text_part),
            html=template_from_json(html) if html else None,
            message_id_domain=domain,
            list_id=f"{config['PUBLICATION_NAME']} <{row.kind}.{domain}>",
            # Feedback-ID is stable per kind of mail (never per message or edition), so
            # feedback loops aggregate: kind:stream:mailer:sender.
            extra_headers={"Feedback-ID": f"{row.kind}:list:newsletter:{sender}",
                           **reply_to_header(config)},
            personal_headers=PERSONAL_HEADERS,
        ), row.kind

    def compose(self, job: Claimed) -> tuple[str, str, bytes]:
        token = self.tokens.make(job.id)
        address = ascii_address(job.email)
        template, kind = self.template(job.variant_id)
        # One-click from a digest leaves digests; from a special edition, special editions.
        unsubscribe_url = self.links.unsubscribe(job.reader_id, stream=kind)
        message = template.render({
            "to": address,
            "message_id": message_id_local(token, job.edition_id),
            "list_unsubscribe": f"<{unsubscribe_url}>",
            "x_newsletter_token": token,
            "greeting": f"Hello {job.first_name}," if job.first_name else "Hello,",
            "email": job.email,
            "unsubscribe_url": unsubscribe_url,
            "preferences_url": self.links.manage(job.reader_id, in_list_mail=True),
            "tracking_token": token,
        })
        if self.signer is not None:
            message = self.signer.sign(message)
        return f"bounces+{token}@{self.bounce_domain}", address, message
