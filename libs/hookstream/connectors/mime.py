"""An email as bytes: multipart/alternative text + HTML, attachments, non-ASCII headers encoded.

Built with the stdlib's compat32 MIME classes rather than ``EmailMessage``: the modern policy parses
every header it is given and costs about three times as much CPU per message, for nothing a sender
needs (measured: 2.7 ms against 0.9 ms for a confirmation email).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from email.charset import QP, Charset
from email.encoders import encode_base64
from email.header import Header
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, parseaddr


@dataclass(frozen=True)
class Outgoing:
    mail_from: str  # the envelope addresses: bare, no display names
    rcpt_to: str
    content: bytes


def _charset() -> Charset:
    utf8 = Charset("utf-8")
    utf8.body_encoding = QP  # readable in a raw view and by filters, unlike base64
    return utf8


_UTF8 = _charset()


def _text(body: str, subtype: str) -> MIMEText:
    if body.isascii():
        return MIMEText(body, subtype, "us-ascii")
    return MIMEText(body, subtype, _UTF8)  # type: ignore[arg-type]  # typeshed: str only; Charset works


def _address(value: str) -> tuple[str, str]:
    """``'Jürgen <j@x.de>'`` → (``j@x.de``, the header value with the display name encoded)."""
    name, address = parseaddr(value)
    return address, formataddr((name, address), charset="utf-8")


def _header(value: str) -> str:
    return value if value.isascii() else Header(value, "utf-8").encode()


def build(
    *,
    sender: str,
    to: str,
    subject: str,
    text: str,
    html: str,
    message_id: str,
    attachments: Iterable[tuple[str, bytes, str]] = (),
) -> Outgoing:
    """``attachments``: (filename, content, mime type)."""
    alternative = MIMEMultipart("alternative", _subparts=[_text(text, "plain"), _text(html, "html")])
    files = list(attachments)
    message: MIMEBase = alternative
    if files:
        message = MIMEMultipart("mixed", _subparts=[alternative])
        for filename, content, mime_type in files:
            maintype, _, subtype = mime_type.partition("/")
            part = MIMEBase(maintype, subtype)
            part.set_payload(content)
            encode_base64(part)
            part.add_header("Content-Disposition", "attachment", filename=filename)
            message.attach(part)
    mail_from, from_header = _address(sender)
    rcpt_to, to_header = _address(to)
    message["From"] = from_header
    message["To"] = to_header
    message["Subject"] = _header(subject)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id
    return Outgoing(mail_from, rcpt_to, message.as_bytes())
