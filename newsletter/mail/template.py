"""A message encoded once per variant and assembled per recipient by joining byte slices.

Contract of :class:`MessageTemplate`:

* :meth:`MessageTemplate.build` encodes everything the recipients of a variant share —
  From, Subject (RFC 2047 when non-ASCII), Date, MIME-Version, List-Id,
  ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``, extra headers, the multipart
  structure and the quoted-printable form of every literal segment of the bodies — once,
  into a tuple of byte slices.
* :meth:`MessageTemplate.render` fills the holes: the personal headers (``to``,
  ``message_id``, ``list_unsubscribe`` by default) and the personal fields of the bodies.
  Body values go in as they are in the text part and HTML-escaped in the HTML part, like
  :meth:`RenderedEmail.personalise`: parsed back, the parts equal its output (line breaks
  as CRLF). A missing value raises ``KeyError`` naming it.
* In the encoded bodies every placeholder sits on lines of its own between soft line
  breaks (``=\\r\\n``), so each value is quoted-printable encoded on its own and never
  depends on its neighbours. Body lines hold at most 76 characters; header lines at most
  78, except a personal header value with no space to fold at (a long URL), which may
  reach 998 and never more.
* CRLF line ends only, 7-bit ASCII, and **no line of ``render()``'s output starts with
  "."** (a leading dot is written ``=2E``; a header name cannot start with one), so the
  SMTP client may send it without dot-stuffing.
* Personal header values must be ASCII (pass the punycode address) without CR, LF or
  NUL, else :class:`HeaderValueError` (a ``ValueError``) names the header.
* ``render`` keeps no state: one template serves any number of threads.
"""

from __future__ import annotations

import email.policy
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime

from markupsafe import escape

from newsletter.mail.message import HeaderValueError
from newsletter.mail.render import PersonalTemplate

__all__ = ["MessageTemplate"]

_POLICY = email.policy.SMTP
_CRLF = b"\r\n"
_SOFT = b"=\r\n"
_HEADER_WIDTH = 78
_HEADER_MAX = 998
# Characters before the "=" of a soft break or the CRLF: 76 on the wire at most.
_BODY_ROOM = 75
_FIELD_NAME = re.compile(r"[!-9;-~]+")
_FORBIDDEN = re.compile(r"[\r\n\0]")
_DOMAIN = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")
_MANAGED = frozenset({
    "from", "to", "subject", "date", "message-id", "mime-version", "content-type",
    "content-transfer-encoding", "list-id", "list-unsubscribe", "list-unsubscribe-post",
    "return-path", "dkim-signature",
})
_REQUIRED_PERSONAL = ("To", "Message-ID", "List-Unsubscribe")
# Bytes a quoted-printable line carries as they are: printable ASCII but "=", and blanks.
_SAFE = bytes(range(33, 61)) + bytes(range(62, 127)) + b" \t"
_QUOTED = [bytes([b]) if b in _SAFE else b"=%02X" % b for b in range(256)]
_TEXT_PART = (b'Content-Type: text/plain; charset="utf-8"\r\n'
              b"Content-Transfer-Encoding: quoted-printable\r\n")
_HTML_PART = (b'Content-Type: text/html; charset="utf-8"\r\n'
              b"Content-Transfer-Encoding: quoted-printable\r\n")

Encoder = Callable[[object], bytes]


def _qp_line(line: bytes, out: list[bytes]) -> None:
    """Append the encoded form of one logical line (no line break in it) to ``out``.

    Every line but the last ends with a soft break; the caller terminates the last. Lines
    hold at most 75 characters before their terminator; a leading "." is ``=2E``, a
    trailing blank is escaped, and an ``=XX`` escape is never cut apart.
    """
    encoded = b"".join([_QUOTED[b] for b in line]) if line.translate(None, _SAFE) else line
    last = encoded[-1]
    if last == 32 or last == 9:
        encoded = encoded[:-1] + (b"=20" if last == 32 else b"=09")
    size, start = len(encoded), 0
    while True:
        if encoded[start] == 46:  # "." at the start of a line
            head, start, room = b"=2E", start + 1, _BODY_ROOM - 3
            if start == size:
                out.append(head)
                return
        else:
            head, room = b"", _BODY_ROOM
        if size - start <= room:
            out.append(head + encoded[start:])
            return
        cut = start + room
        # "=" only ever opens an escape: do not cut its three characters apart.
        if encoded[cut - 1] == 61:
            cut -= 1
        elif encoded[cut - 2] == 61:
            cut -= 2
        out.append(head + encoded[start:cut] + _SOFT)
        start = cut


def _qp(value: str) -> bytes:
    """Quoted-printable (UTF-8, CRLF) of a body fragment that starts at a line start.

    The result ends with CRLF when the fragment ends with a line break and with a soft
    break otherwise, so whatever follows starts a line too; "" encodes as nothing.
    """
    if len(value) <= _BODY_ROOM and value.isascii():
        # The usual value: short printable ASCII that needs no escape at all.
        data = value.encode("ascii")
        if not data:
            return b""
        if (not data.translate(None, _SAFE) and data[0] != 46
                and data[-1] != 32 and data[-1] != 9):
            return data + _SOFT
    lines = value.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8").split(b"\n")
    out: list[bytes] = []
    for line in lines[:-1]:
        if line:
            _qp_line(line, out)
        out.append(_CRLF)
    if lines[-1]:
        _qp_line(lines[-1], out)
        out.append(_SOFT)
    return b"".join(out)


def _text_value(value: object) -> bytes:
    return _qp(str(value))


def _html_value(value: object) -> bytes:
    return _qp(str(escape(value)))


def _header(name: str, value: str) -> bytes:
    """``Name: value`` and CRLF, folded before spaces so lines stay within 78 characters.

    A word longer than a line (a URL) is never broken: its line may reach 998 characters,
    and a longer one raises :class:`HeaderValueError`.
    """
    if not value.isascii() or "\r" in value or "\n" in value or "\0" in value:
        raise HeaderValueError(name, "must be ASCII without CR, LF or NUL")
    column = len(name) + 2
    if column + len(value) <= _HEADER_WIDTH:
        return f"{name}: {value}\r\n".encode("ascii")
    lines = []
    start, size = 0, len(value)
    while column + size - start > _HEADER_WIDTH:
        cut = value.rfind(" ", start + 1, start + _HEADER_WIDTH - column + 1)
        if cut == -1 or value[start:cut].isspace():
            # Nowhere to break within 78: break at the first space after the next word.
            word = start + 1
            while word < size and value[word] in " \t":
                word += 1
            cut = value.find(" ", word)
            if cut == -1:
                break
        lines.append(value[start:cut])
        start, column = cut, 0
    lines.append(value[start:])
    if len(name) + 2 + len(lines[0]) > _HEADER_MAX or max(map(len, lines)) > _HEADER_MAX:
        raise HeaderValueError(name, f"has a word longer than {_HEADER_MAX} characters")
    return (name + ": " + "\r\n".join(lines) + "\r\n").encode("ascii")


def _to_header(value: object) -> bytes:
    value = str(value)
    if "@" not in value:
        raise HeaderValueError("To", f"must hold an address, got {value!r}")
    return _header("To", value)


def _message_id_header(domain: bytes) -> Encoder:
    def encode(value: object) -> bytes:
        local = str(value)
        if (not local or not local.isascii() or not local.isprintable() or " " in local
                or "<" in local or ">" in local or "@" in local):
            raise HeaderValueError("Message-ID", f"needs a printable ASCII id, got {local!r}")
        line = b"Message-ID: <" + local.encode("ascii") + b"@" + domain + b">\r\n"
        if len(line) > _HEADER_MAX + 2:
            raise HeaderValueError("Message-ID", "is too long")
        return line
    return encode


def _list_unsubscribe_header(value: object) -> bytes:
    value = str(value)
    if not value[:9].lower().startswith(("<https://", "<http://")):
        raise HeaderValueError("List-Unsubscribe",
                               f"must start with an <http(s)://...> URL, got {value[:40]!r}")
    return _header("List-Unsubscribe", value)


def _personal_header(name: str) -> Encoder:
    return lambda value: _header(name, str(value))


def _fold_static(name: str, value: str) -> bytes:
    return _POLICY.header_factory(name, value).fold(policy=_POLICY).encode("ascii")


def _check_mailbox(name: str, value: str) -> None:
    header = _POLICY.header_factory(name, value)
    addresses = header.addresses
    if len(addresses) != 1 or header.defects:
        raise ValueError(f"{name} must hold exactly one valid address, got {value!r}")
    address = addresses[0]
    if not address.username or not address.domain or not address.addr_spec.isascii():
        raise ValueError(f"{name} must hold an ASCII user@domain address, got {value!r}")


def _check_name(name: str) -> None:
    if not _FIELD_NAME.fullmatch(name) or name.startswith("."):
        raise HeaderValueError(name.encode("unicode_escape").decode(),
                               "is not a valid header name")


class MessageTemplate:
    """One variant of a message, pre-encoded; :meth:`render` makes one recipient's copy.

    ``fields`` holds every key :meth:`render` needs: the personal header keys (the header
    name lowercased with "-" as "_": ``to``, ``message_id``, ``list_unsubscribe``) and the
    fields of the text and HTML templates.
    """

    __slots__ = ("_holes", "_slices", "fields")

    def __init__(self, slices: Sequence[bytes], holes: Sequence[tuple[int, str, Encoder]],
                 fields: frozenset[str]) -> None:
        """Use :meth:`build`; this only stores what it computed."""
        self._slices = tuple(slices)
        self._holes = tuple(holes)
        self.fields = fields

    @classmethod
    def build(
        cls,
        *,
        from_addr: str,
        subject: str,
        text: PersonalTemplate,
        html: PersonalTemplate | None,
        message_id_domain: str,
        list_id: str | None,
        extra_headers: Mapping[str, str] | None = None,
        personal_headers: Sequence[str] = _REQUIRED_PERSONAL,
        date: datetime | None = None,
    ) -> MessageTemplate:
        """Encode the shared part of a variant once.

        ``from_addr`` holds one mailbox (its display name may be non-ASCII). ``list_id``
        is the whole header value. ``extra_headers`` (``Feedback-ID``…) may not repeat a
        header set here. ``personal_headers`` must name To, Message-ID and
        List-Unsubscribe; any other name adds a header whose value :meth:`render` takes
        under the key ``name.lower().replace("-", "_")``. ``date`` must be
        timezone-aware (default: now, UTC) and is the same for the whole send. With
        ``html=None`` the message is a single text/plain part.
        """
        extra = dict(extra_headers or {})
        for name, value in [("From", from_addr), ("Subject", subject),
                            ("Message-ID", message_id_domain), ("List-Id", list_id),
                            *extra.items()]:
            if value is not None and _FORBIDDEN.search(value):
                raise HeaderValueError(name)
        _check_mailbox("From", from_addr)
        if not _DOMAIN.fullmatch(message_id_domain):
            raise ValueError(f"message_id_domain must be an ASCII domain, got "
                             f"{message_id_domain!r}")
        for name in extra:
            _check_name(name)
            if name.lower() in _MANAGED:
                raise ValueError(f"extra header {name!r} is set by MessageTemplate itself")
        others = _other_personal_headers(personal_headers, extra)
        if date is None:
            date = datetime.now(UTC)
        elif date.tzinfo is None:
            raise ValueError("date must be timezone-aware")

        plan = _Plan()
        plan.static(_fold_static("From", from_addr))
        plan.hole("to", _to_header)
        plan.static(_fold_static("Subject", subject) + _fold_static("Date", format_datetime(date)))
        plan.hole("message_id", _message_id_header(message_id_domain.encode("ascii")))
        if list_id is not None:
            plan.static(_fold_static("List-Id", list_id))
        plan.hole("list_unsubscribe", _list_unsubscribe_header)
        plan.static(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
        for name, value in extra.items():
            plan.static(_fold_static(name, value))
        for name in others:
            plan.hole(name.lower().replace("-", "_"), _personal_header(name))
        plan.static(b"MIME-Version: 1.0\r\n")

        if html is None:
            plan.static(_TEXT_PART + _CRLF)
            # A final soft break keeps the text exact and still ends the message with CRLF.
            plan.body(text, _text_value, last_soft=True)
        else:
            # "=_" never occurs in quoted-printable output, so no part can hold the boundary.
            boundary = b"=_" + secrets.token_hex(12).encode()
            plan.static(b'Content-Type: multipart/alternative; boundary="' + boundary
                        + b'"\r\n\r\n--' + boundary + _CRLF + _TEXT_PART + _CRLF)
            plan.body(text, _text_value, last_soft=False)
            plan.static(_CRLF + b"--" + boundary + _CRLF + _HTML_PART + _CRLF)
            plan.body(html, _html_value, last_soft=False)
            plan.static(_CRLF + b"--" + boundary + b"--" + _CRLF)
        return cls(plan.slices, plan.holes, frozenset(plan.keys))

    def render(self, values: Mapping[str, object]) -> bytes:
        """Return one recipient's message: CRLF-only, ASCII, no line starting with ".".

        ``values`` maps every key in :attr:`fields` to its value; extra keys are ignored.
        Raises ``KeyError`` naming the missing keys and :class:`HeaderValueError` for a
        header value with CR, LF, NUL or non-ASCII characters.
        """
        parts = list(self._slices)
        # A value often fills many holes (the tracking token in every link): encode it once
        # per encoder.
        encoded: dict[tuple[str, Encoder], bytes] = {}
        try:
            for index, key, encode in self._holes:
                done = encoded.get((key, encode))
                if done is None:
                    done = encoded[(key, encode)] = encode(values[key])
                parts[index] = done
        except KeyError:
            missing = sorted(self.fields.difference(values))
            if missing:
                raise KeyError(f"missing personal value(s): {missing}") from None
            raise
        return b"".join(parts)

    def __repr__(self) -> str:
        return f"<MessageTemplate fields={sorted(self.fields)}>"


class _Plan:
    """Collects byte slices and holes while :meth:`MessageTemplate.build` runs."""

    def __init__(self) -> None:
        self.slices: list[bytes] = [b""]
        self.holes: list[tuple[int, str, Encoder]] = []
        self.keys: list[str] = []

    def static(self, data: bytes) -> None:
        # Adjacent constant bytes merge, so render() joins as few slices as possible.
        self.slices[-1] += data

    def hole(self, key: str, encode: Encoder) -> None:
        self.holes.append((len(self.slices), key, encode))
        self.keys.append(key)
        self.slices.extend((b"", b""))

    def body(self, template: PersonalTemplate, encode: Encoder, *, last_soft: bool) -> None:
        """Encode the literals once; each field becomes a hole starting a line of its own."""
        literals = template.literals
        for literal, field in zip(literals, template.fields, strict=False):
            self.static(_qp(literal))
            self.hole(field, encode)
        tail = _qp(literals[-1])
        if not last_soft and tail.endswith(_SOFT):
            tail = tail[:-3]
        self.static(tail)


def _other_personal_headers(personal_headers: Sequence[str],
                            extra: Mapping[str, str]) -> list[str]:
    """The personal headers beyond To, Message-ID and List-Unsubscribe (which must all be
    named); raises ``ValueError`` for a bad, repeated or managed name."""
    personal = list(personal_headers)
    lowered = [name.lower() for name in personal]
    for name in personal:
        _check_name(name)
    for required in _REQUIRED_PERSONAL:
        if required.lower() not in lowered:
            raise ValueError(f"personal_headers must include {required}")
    if len(set(lowered)) != len(lowered) or set(lowered) & {n.lower() for n in extra}:
        raise ValueError("a header is named twice in personal_headers and extra_headers")
    others = [n for n in personal if n.lower() not in _MANAGED]
    if len(others) != len(personal) - len(_REQUIRED_PERSONAL):
        raise ValueError("personal_headers may only add headers MessageTemplate does not set")
    return others
