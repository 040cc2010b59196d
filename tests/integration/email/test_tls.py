"""The relay connection modes: STARTTLS with authentication and implicit TLS, against real
aiosmtpd relays with a self-signed certificate; and the relay options."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from opencadence.api import tls
from opencadence.cadence import worker
from opencadence.email import smtp_sender
from opencadence.storage import records
from tests.integration.email.conftest import Enrol, Relay, Template, _auth, free_port
from tests.integration.email.test_send import auto_step


def _contexts(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    cert, key = tls.self_signed(tmp_path / "tls")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    return server, ssl.create_default_context(cafile=str(cert))


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_tls_modes(
    store: records.Store, tmp_path: Path, template: Template, enrol: Enrol, mode: str
) -> None:
    server_ctx, client_ctx = _contexts(tmp_path)
    relay = Relay(port=free_port())
    if mode == "starttls":  # authentication only once the channel is encrypted
        ctl = Controller(
            relay,
            hostname="127.0.0.1",
            port=relay.port,
            tls_context=server_ctx,
            require_starttls=True,
            authenticator=_auth,
        )
    else:
        # aiosmtpd only counts STARTTLS as encrypted; the implicit-TLS socket is too
        ctl = Controller(
            relay,
            hostname="127.0.0.1",
            port=relay.port,
            ssl_context=server_ctx,
            authenticator=_auth,
            auth_require_tls=False,
        )
    ctl.start()
    try:
        sender = smtp_sender.SmtpSender(
            store,
            smtp_sender.SmtpConfig(
                port=relay.port,
                tls=mode,
                user="rep",
                password="secret",
                ssl_context=client_ctx,
                timeout=5,
            ),
        )
        target = enrol(template())
        worker.Worker(store, sender).run_until_idle()
        sender.close()
    finally:
        ctl.stop()
    step = auto_step(store, target)
    assert (step["State"], step["ErrorCode"]) == ("Completed", None) and len(relay.received) == 1


def test_untrusted_certificate_is_retried_not_sent(
    store: records.Store, tmp_path: Path, template: Template, enrol: Enrol
) -> None:
    server_ctx, _ = _contexts(tmp_path)
    relay = Relay(port=free_port())
    ctl = Controller(relay, hostname="127.0.0.1", port=relay.port, ssl_context=server_ctx)
    ctl.start()
    try:
        sender = smtp_sender.SmtpSender(
            store, smtp_sender.SmtpConfig(port=relay.port, tls="tls", timeout=5)
        )
        target = enrol(template())
        worker.Worker(store, sender).run_until_idle()
    finally:
        ctl.stop()
    step = auto_step(store, target)
    assert (step["State"], step["ErrorCode"]) == ("Queued", "RETRY_LATER")
    assert relay.received == []


def test_relay_options() -> None:
    c = smtp_sender.config_from_options(
        "smtp.example.com:587",
        environ={"OPENCADENCE_SMTP_USER": "u", "OPENCADENCE_SMTP_PASSWORD": "p"},
    )
    assert (c.host, c.port, c.tls, c.user, c.password) == (
        "smtp.example.com",
        587,
        "starttls",
        "u",
        "p",
    )
    c = smtp_sender.config_from_options("[::1]:25", user="x", tls="none", environ={})
    assert (c.host, c.user, c.password, c.tls) == ("::1", "x", None, "none")
    for bad in ("nohost", "h:port"):
        with pytest.raises(ValueError):
            smtp_sender.config_from_options(bad, environ={})
    with pytest.raises(ValueError):
        smtp_sender.config_from_options("h:25", tls="ssl", environ={})
