"""Email: Jinja2 templates the user can override, sent over SMTP with aiosmtplib.

``Templates`` renders a message kind (``order_confirmation``, ...) from three files:
``<kind>.subject.txt``, ``<kind>.txt`` and ``<kind>.html``. A directory the user names comes
first, the service's packaged templates second, so overriding one file is enough. Undefined
variables are errors, and ``check()`` renders every kind once at startup, so a broken template is
a one-line startup error naming the setting, not a dead letter per order.

``Mailer`` sends one message per call. SMTP has no idempotency key, so email is at-least-once: a
process killed after the server accepted a message but before its step was recorded sends it
again. The ``Message-ID`` is derived from the effect's key, so the resend carries the same id and a
receiver can drop it. The step is committed right after the server's answer (no QUIT in between),
and the connection is kept for the next message rather than closed.
An SMTP 5xx (a refused recipient, a rejected message) is permanent; 4xx, a timeout or a refused
connection is retriable.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosmtplib
import jinja2
from pydantic_settings import BaseSettings

from hookstream import tracing
from hookstream.connectors import mime
from hookstream.errors import ConfigurationError, PermanentError, RetriableError
from hookstream.lifecycle import Lifecycle


class MailUnavailable(RetriableError):
    """The mail server did not take the message now (4xx, timeout, no connection); retried later."""


class MailRejected(PermanentError):
    """The mail server refused the message for good (5xx): a bad address or a rejected message."""


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mime_type: str = "application/pdf"


class Templates:
    def __init__(
        self, package: str, kinds: Iterable[str], *, override_dir: str | None = None, setting: str = ""
    ) -> None:
        self.kinds = tuple(kinds)
        self.setting = setting
        self.override_dir = override_dir
        loaders: list[jinja2.BaseLoader] = [jinja2.PackageLoader(package, "templates")]
        if override_dir:
            loaders.insert(0, jinja2.FileSystemLoader(override_dir))
        # Subjects and plain-text bodies are not HTML: escaping would put "&amp;" into them.
        self._text = jinja2.Environment(  # noqa: S701
            loader=jinja2.ChoiceLoader(loaders), undefined=jinja2.StrictUndefined, keep_trailing_newline=True
        )
        self._html = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders), undefined=jinja2.StrictUndefined, autoescape=True
        )

    def render(self, kind: str, context: Mapping[str, Any]) -> Rendered:
        return Rendered(
            subject=" ".join(self._text.get_template(f"{kind}.subject.txt").render(context).split()),
            text=self._text.get_template(f"{kind}.txt").render(context),
            html=self._html.get_template(f"{kind}.html").render(context),
        )

    def check(self, sample: Mapping[str, Any]) -> None:
        """Render every kind with a sample context; a broken or missing template is a ConfigurationError."""
        if self.override_dir and not Path(self.override_dir).is_dir():
            raise ConfigurationError(f"{self.setting} is {self.override_dir!r}, which is not a directory")
        for kind in self.kinds:
            try:
                self.render(kind, sample)
            except jinja2.TemplateSyntaxError as exc:
                raise ConfigurationError(
                    f"email template {exc.name or kind} line {exc.lineno}: {exc.message}{self._where()}"
                ) from None
            except jinja2.TemplateNotFound as exc:
                raise ConfigurationError(f"email template {exc.name} is missing{self._where()}") from None
            except jinja2.TemplateError as exc:
                raise ConfigurationError(f"email template {kind}: {exc}{self._where()}") from None

    def _where(self) -> str:
        return f" (templates from {self.setting}={self.override_dir})" if self.override_dir else ""


@dataclass(frozen=True)
class SmtpEndpoint:
    host: str
    port: int = 25
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    timeout_ms: int = 10_000
    setting: str = ""

    def check(self) -> None:
        if not self.host:
            raise ConfigurationError(
                f"{self.setting}SMTP_HOST is not set: give the mail server"
                " (the sandbox, `hookstream run sandbox`, listens on 127.0.0.1:9525)"
            )
        if not 0 < self.port < 65536:
            raise ConfigurationError(f"{self.setting}SMTP_PORT must be a port number, not {self.port}")


class Mailer(Lifecycle):
    def __init__(
        self, endpoint: SmtpEndpoint, *, max_idle_connections: int = 10, idle_timeout_ms: int = 30_000
    ) -> None:
        self.endpoint = endpoint
        self.max_idle_connections = max_idle_connections
        self.idle_timeout_ms = idle_timeout_ms  # well under the 5 minutes RFC 5321 gives a server's idle timeout
        self._local_hostname: str | None = None
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []  # (connection, when it was given back)

    async def start(self) -> None:
        self.endpoint.check()
        # Looked up once: aiosmtplib would otherwise ask for it in a worker thread on every connection.
        self._local_hostname = await asyncio.to_thread(socket.getfqdn)

    async def stop(self) -> None:
        idle, self._idle = self._idle, []
        for smtp, _ in idle:
            smtp.close()

    async def send(
        self,
        *,
        sender: str,
        to: str,
        rendered: Rendered,
        idempotency_key: str,
        attachments: Iterable[Attachment] = (),
    ) -> str:
        """Send one message; its Message-ID (derived from ``idempotency_key``) is returned."""
        message_id = f"<{idempotency_key}@hookstream>"
        outgoing = mime.build(
            sender=sender,
            to=to,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            message_id=message_id,
            attachments=[(a.filename, a.content, a.mime_type) for a in attachments],
        )
        e = self.endpoint
        smtp: aiosmtplib.SMTP | None = None
        sent = False
        try:
            with tracing.span("smtp send", {"server.address": e.host, "server.port": e.port}, kind="client"):
                smtp = await self._connection()
                await smtp.sendmail(outgoing.mail_from, [outgoing.rcpt_to], outgoing.content)
            sent = True
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
            if all(400 <= c < 500 for c in codes):
                raise MailUnavailable(f"mail server deferred {to}: {detail}") from exc
            raise MailRejected(f"mail server refused {to}: {detail}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            text = f"mail server answered {exc.code} {exc.message} for the message to {to}"
            if 400 <= exc.code < 500:
                raise MailUnavailable(text) from exc
            raise MailRejected(text) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise MailUnavailable(f"mail server {e.host}:{e.port} unavailable: {type(exc).__name__}: {exc}") from exc
        finally:
            # No QUIT: the 250 after DATA is the server taking the message, and every moment between it
            # and the caller recording the step is a window in which a crash sends it twice. The
            # connection carries the next message instead (connect, greeting and EHLO are three of a
            # message's six round trips); after any error it is closed.
            if smtp is not None and sent:
                self._give_back(smtp)
            elif smtp is not None:
                smtp.close()
        return message_id

    async def _connection(self) -> aiosmtplib.SMTP:
        now = time.monotonic()
        while self._idle:
            smtp, since = self._idle.pop()
            if smtp.is_connected and now - since < self.idle_timeout_ms / 1000:
                return smtp
            smtp.close()  # closed by the server meanwhile, or idle long enough that it may be
        e = self.endpoint
        smtp = aiosmtplib.SMTP(
            hostname=e.host,
            port=e.port,
            username=e.username,
            password=e.password,
            start_tls=e.starttls,
            timeout=e.timeout_ms / 1000,
            local_hostname=self._local_hostname,
        )
        await smtp.connect()
        return smtp

    def _give_back(self, smtp: aiosmtplib.SMTP) -> None:
        if len(self._idle) < self.max_idle_connections and smtp.is_connected:
            self._idle.append((smtp, time.monotonic()))
        else:
            smtp.close()


class MailSettings(BaseSettings):
    """The mail settings of a workflow that sends email (mixed into its settings, under its prefix)."""

    smtp_host: str = ""  # the sandbox's: 127.0.0.1 (port 9525)
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_timeout_ms: int = 10_000
    sender: str = ""  # "Shop <orders@shop.example>"
    templates_dir: str | None = None  # files here replace the packaged templates of the same name

    def prefix(self) -> str:
        return str(self.model_config.get("env_prefix", ""))

    def mailer(self) -> Mailer:
        return Mailer(
            SmtpEndpoint(
                self.smtp_host,
                self.smtp_port,
                self.smtp_username,
                self.smtp_password,
                self.smtp_starttls,
                self.smtp_timeout_ms,
                self.prefix(),
            )
        )

    def templates(self, package: str, kinds: Iterable[str]) -> Templates:
        return Templates(package, kinds, override_dir=self.templates_dir, setting=f"{self.prefix()}TEMPLATES_DIR")


class MailChecks(Lifecycle):
    """At start: a sender is set and every template renders with ``sample`` (a one-line error otherwise)."""

    def __init__(self, settings: MailSettings, templates: Templates, sample: Mapping[str, Any]) -> None:
        self.settings = settings
        self.templates = templates
        self.sample = sample

    async def start(self) -> None:
        if not self.settings.sender:
            raise ConfigurationError(
                f"{self.settings.prefix()}SENDER is not set: give the From address, e.g. 'Shop <orders@shop.example>'"
            )
        self.templates.check(self.sample)

    async def stop(self) -> None:
        return None
