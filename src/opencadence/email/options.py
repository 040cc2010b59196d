"""Command-line configuration of email, shared by `opencadence serve` and `opencadence worker`.

--smtp-relay HOST:PORT  --smtp-user U --smtp-password P (or $OPENCADENCE_SMTP_USER /
$OPENCADENCE_SMTP_PASSWORD)  --smtp-tls starttls|tls|none  --inbound-smtp-port N
--public-url URL (base of tracking links). Caps, windows and org email switches are org
settings (``email.settings``), not flags.
"""

from __future__ import annotations

import argparse

from opencadence.cadence import sender as senders
from opencadence.email import inbound, smtp_sender
from opencadence.storage import records


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--smtp-relay", metavar="HOST:PORT", help="send automated emails through this relay"
    )
    parser.add_argument("--smtp-user", help="relay login (default $OPENCADENCE_SMTP_USER)")
    parser.add_argument(
        "--smtp-password", help="relay password (default $OPENCADENCE_SMTP_PASSWORD)"
    )
    parser.add_argument("--smtp-tls", choices=("starttls", "tls", "none"), default="starttls")
    parser.add_argument(
        "--inbound-smtp-port", type=int, help="listen for replies and bounces on this port"
    )
    parser.add_argument(
        "--public-url",
        help="base URL of open/click tracking links, e.g. https://cadence.example.com",
    )


def sender(store: records.Store, args: argparse.Namespace, secret: bytes) -> senders.Sender | None:
    """The SMTP sender of ``--smtp-relay`` (None: no relay, automated emails are recorded only)."""
    if not getattr(args, "smtp_relay", None):
        return None
    config = smtp_sender.config_from_options(
        args.smtp_relay,
        user=args.smtp_user,
        password=args.smtp_password,
        tls=args.smtp_tls,
        public_url=args.public_url,
        tracking_secret=secret if args.public_url else None,
    )
    smtp = smtp_sender.SmtpSender(store, config)
    smtp.reconcile()  # sends interrupted by a crash are finished or counted before new work
    return smtp


def listener(
    store: records.Store, args: argparse.Namespace, host: str
) -> inbound.InboundListener | None:
    """The reply/bounce listener of ``--inbound-smtp-port``, started."""
    port = getattr(args, "inbound_smtp_port", None)
    if not port:
        return None
    found = inbound.InboundListener(store, host=host, port=port)
    found.start()
    return found
