import email
import email.policy
from email.message import EmailMessage

from hookstream.connectors import mime


def _read(content: bytes) -> EmailMessage:
    message = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_non_ascii_names_subject_and_bodies_survive_a_standard_reader() -> None:
    out = mime.build(
        sender="Bäckerei Jürgen <orders@shop.example>",
        to="Zoë Ångström <zoe@example.se>",
        subject="Danke für Ihre Bestellung 1001 — bis bald",
        text="Grüße,\nIhr Team\n",
        html="<p>Grüße &amp; Dank</p>",
        message_id="<k1@hookstream>",
    )
    assert (out.mail_from, out.rcpt_to) == ("orders@shop.example", "zoe@example.se")
    assert out.content.isascii()  # encoded words and quoted-printable: 7-bit safe for any relay
    message = _read(out.content)
    assert message["Subject"] == "Danke für Ihre Bestellung 1001 — bis bald"
    assert message["From"].addresses[0].display_name == "Bäckerei Jürgen"
    assert message["To"].addresses[0].addr_spec == "zoe@example.se"
    assert message["Message-ID"] == "<k1@hookstream>"
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None
    assert plain.get_content() == "Grüße,\nIhr Team\n"
    assert html is not None
    assert html.get_content() == "<p>Grüße &amp; Dank</p>"
    assert not list(message.iter_attachments())


def test_attachments_follow_the_alternative_bodies() -> None:
    pdf = b"%PDF-1.4\n" + bytes(range(256))
    out = mime.build(
        sender="orders@shop.example",
        to="a@example.com",
        subject="Invoice",
        text="attached",
        html="<p>attached</p>",
        message_id="<k2@hookstream>",
        attachments=[("invoice-2026-000001.pdf", pdf, "application/pdf")],
    )
    message = _read(out.content)
    assert message.get_content_type() == "multipart/mixed"
    body = message.get_body(("plain",))
    assert body is not None
    assert body.get_content().strip() == "attached"
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "invoice-2026-000001.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == pdf
