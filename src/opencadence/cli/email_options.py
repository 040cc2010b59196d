"""Command-line configuration of email, shared by `opencadence serve` and `opencadence worker`.

--smtp-relay HOST:PORT  --smtp-user U --smtp-password P (or $OPENCADENCE_SMTP_USER /
$OPENCADENCE_SMTP_PASSWORD)  --smtp-tls starttls|tls|none  --inbound-smtp-port N
--public-url URL (base of tracking links). Caps, windows and org email switches are org
settings (``email.settings``), not flags. The arguments end here: they become Settings.
"""

from __future__ import annotations

import argparse

from opencadence.system import SmtpRelay


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


def relay(args: argparse.Namespace) -> SmtpRelay | None:
    """The relay of ``--smtp-relay`` (None: no relay, automated emails are recorded only)."""
    if not args.smtp_relay:
        return None
    return SmtpRelay(
        args.smtp_relay,
        user=args.smtp_user,
        password=args.smtp_password,
        tls=args.smtp_tls,
        public_url=args.public_url,
    )


def inbound_port(args: argparse.Namespace) -> int | None:
    """The port of ``--inbound-smtp-port`` (None: no reply/bounce listener)."""
    port: int | None = args.inbound_smtp_port
    return port or None
