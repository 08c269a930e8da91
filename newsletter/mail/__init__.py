"""The mail layer: render templates, build and sign messages, hand them to a transport.

A plain library (no Flask): the app wires it in ``newsletter.wiring``.
"""

from newsletter.mail.dkim import DEFAULT_SIGNED_HEADERS, DkimError, DkimSigner
from newsletter.mail.fastdkim import FastDkimSigner
from newsletter.mail.local_transports import ConsoleTransport, FileTransport
from newsletter.mail.message import HeaderValueError, build_message
from newsletter.mail.render import EmailRenderer, PersonalTemplate, RenderedEmail, TemplateError
from newsletter.mail.setup import MailSetup
from newsletter.mail.template import MessageTemplate
from newsletter.mail.transports import (
    SendResult,
    SmtpSettings,
    SMTPTransport,
    Transport,
    TransportError,
    make_transport,
    parse_smtp_url,
)

__all__ = [
    "DEFAULT_SIGNED_HEADERS",
    "ConsoleTransport",
    "DkimError",
    "DkimSigner",
    "EmailRenderer",
    "FastDkimSigner",
    "FileTransport",
    "HeaderValueError",
    "MailSetup",
    "MessageTemplate",
    "PersonalTemplate",
    "RenderedEmail",
    "SMTPTransport",
    "SendResult",
    "SmtpSettings",
    "TemplateError",
    "Transport",
    "TransportError",
    "build_message",
    "make_transport",
    "parse_smtp_url",
]
