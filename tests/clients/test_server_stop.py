"""The client tests' server stops promptly, and a connection that would hold it open is caught."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import requests
import uvicorn

from opencadence.api import app as api_app
from opencadence.api import tls
from opencadence.org import Org
from opencadence.storage import records

from .conftest import free_port, serving


def _tls_config(store: records.Store, tmp_path: Path) -> tuple[uvicorn.Config, Path]:
    cert, key = tls.self_signed(tmp_path / "tls")
    app = api_app.build_app(Org(store))
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=free_port(),
        log_level="critical",
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
    )
    return config, cert


def _server_threads(port: int) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"uvicorn-{port}"]


def _session(cert: Path) -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # else REQUESTS_CA_BUNDLE would override the verify below
    s.verify = str(cert)
    return s


def _versions(s: requests.Session, port: int) -> None:
    assert s.get(f"https://127.0.0.1:{port}/services/data/").status_code == 200


def test_the_server_thread_ends_once_its_clients_close(
    store: records.Store, tmp_path: Path
) -> None:
    config, cert = _tls_config(store, tmp_path)
    started = 0.0
    with serving(config):
        s = _session(cert)
        _versions(s, config.port)  # leaves an idle keep-alive TLS connection
        s.close()
        started = time.monotonic()
    assert time.monotonic() - started < 2.0
    assert _server_threads(config.port) == []


def test_a_connection_left_open_fails_the_stop_loudly(store: records.Store, tmp_path: Path) -> None:
    config, cert = _tls_config(store, tmp_path)
    s = _session(cert)
    try:
        with pytest.raises(AssertionError, match=r"1 connection\(s\) still open"):
            with serving(config, stop_within=0.5):
                _versions(s, config.port)
    finally:
        s.close()
    deadline = time.monotonic() + 5
    while _server_threads(config.port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _server_threads(config.port) == []  # ends once the client has gone
