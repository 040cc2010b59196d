"""What sharing CometD clients through the database costs a connect (``serve --processes N``).

A server in this process (uvicorn in a thread, plain HTTP on 127.0.0.1), once with its CometD
clients in memory and once shared in ``oc_cometd_client`` (as each child of
``serve --processes N`` runs); one raw Bayeux client subscribed to /data/ContactChangeEvent.
Each cycle commits one Contact through another engine (as another process would), then sends
a /meta/connect, which finds the event at once: its wall time, and the statements the server's
engine ran for it (the session read included). The headline is memory p50 / shared p50.

    python bench/cometd_cycle.py [--quick] [--database URL]   (default: a new SQLite file)
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
import uvicorn

from opencadence import system
from opencadence.api import app as api_app
from opencadence.api import server as api_server

GOAL = 0.5  # shared at most twice the in-memory connect


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(config: uvicorn.Config) -> Iterator[None]:
    """uvicorn in a thread, until the block ends."""
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(10)


def cycles(url: str, shared: bool, n: int) -> tuple[list[float], list[int]]:
    settings = system.Settings(database_url=url, upgrade=True, worker=False)
    with system.build(settings) as srv, system.build(settings) as other:
        uid, _ = srv.org.accounts.create_user(f"cycle{time.time_ns()}@oc.test", "pw", admin=True)
        token = srv.org.accounts.open_session(uid)
        port = free_port()
        app = api_app.build_app(srv.org, streaming_timeout=30.0, shared_streaming=shared)
        config: uvicorn.Config = api_server.config(
            app, host="127.0.0.1", port=port, tls_files=None, log_level="error"
        )
        seen: list[str] = []

        def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            seen.append(statement)

        sa.event.listen(srv.store.engine, "before_cursor_execute", count)
        times, statements = [], []
        with serving(config), requests.Session() as http:
            http.trust_env = False

            def post(*messages: dict[str, Any]) -> list[dict[str, Any]]:
                reply = http.post(
                    f"http://127.0.0.1:{port}/cometd/59.0",
                    json=list(messages),
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=30,
                )
                return reply.json()  # type: ignore[no-any-return]

            cid = post({"channel": "/meta/handshake"})[0]["clientId"]
            channel = "/data/ContactChangeEvent"
            post({"channel": "/meta/subscribe", "clientId": cid, "subscription": channel})
            post({"channel": "/meta/connect", "clientId": cid})
            for i in range(n):
                with other.store.transaction() as tx:
                    tx.insert("Contact", {"LastName": f"Cycle{i}"})
                before, started = len(seen), time.perf_counter()
                got = post({"channel": "/meta/connect", "clientId": cid})
                times.append(time.perf_counter() - started)
                statements.append(len(seen) - before)
                assert any("data" in m for m in got), got
        sa.event.remove(srv.store.engine, "before_cursor_execute", count)
        return times, statements


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 cycles each, not 300")
    parser.add_argument("--database", help="database URL (default: a new SQLite file)")
    args = parser.parse_args()
    n = 50 if args.quick else 300
    url = args.database or f"sqlite:///{Path(tempfile.mkdtemp(prefix='occycle')) / 'c.db'}"
    p50 = {}
    for shared in (False, True):
        times, statements = cycles(url, shared, n)
        name = "shared" if shared else "memory"
        p50[name] = statistics.median(times)
        print(
            f"{name}: {statistics.median(statements):.0f} statements per delivering connect "
            f"(session read included); p50 {1000 * p50[name]:.1f} ms, "
            f"p90 {1000 * sorted(times)[int(0.9 * n)]:.1f} ms over {n} cycles"
        )
    print(f"database: {url.split(':', 1)[0]}")
    print(f"ratio={p50['memory'] / p50['shared']:.2f} goal>={GOAL:.2f}")


if __name__ == "__main__":
    main()
