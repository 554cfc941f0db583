"""Email over SMTP (aiosmtplib): host, port, STARTTLS or implicit TLS, credentials."""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib

from notify_ws.channels.base import Outcome, Outgoing
from notify_ws.exceptions import ChannelError
from notify_ws.settings import NotifySettings


class SmtpEmail:
    name = "email"

    def __init__(self, settings: NotifySettings) -> None:
        self._s = settings

    def breaker_key(self, message: Outgoing) -> str:
        return "email"

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def build(self, message: Outgoing) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self._s.smtp_from
        mail["To"] = message.prefs.email or ""
        mail["Subject"] = message.subject
        mail["X-TaskFlow-Notifications"] = ",".join(str(n.id) for n in message.notifications)
        mail.set_content(message.text)
        return mail

    async def deliver(self, message: Outgoing) -> Outcome:
        if not message.prefs.email:
            return "skipped"
        s = self._s
        try:
            await aiosmtplib.send(
                self.build(message),
                hostname=s.smtp_host,
                port=s.smtp_port,
                start_tls=s.smtp_starttls,
                use_tls=s.smtp_use_tls,
                username=s.smtp_username,
                password=s.smtp_password.get_secret_value() if s.smtp_password else None,
                timeout=s.channel_timeout.total_seconds(),
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise ChannelError(f"recipient refused: {exc}", permanent=True) from None
        except aiosmtplib.SMTPResponseException as exc:
            # 5xx replies are permanent by RFC 5321; 4xx are worth retrying.
            raise ChannelError(
                f"SMTP {exc.code}: {exc.message}", permanent=exc.code >= 500
            ) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise ChannelError(f"SMTP unavailable: {exc}") from None
        return "delivered"
