"""SOAP vs REST, same server, same run: a 2,000-record query of step trackers through unmodified
zeep (partner WSDL, QueryOptions default 2,000) vs the same query through simple-salesforce.

The server runs in this process (uvicorn in a thread, TLS on 127.0.0.1); a timing wrapper
around the ASGI app measures the server-side time of each request, from the first byte received
to the last byte sent. Prints medians of server-side and client-visible time.

    python bench/soap.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import uvicorn

sys.path.insert(0, str(Path(__file__).parent))
import soql as soql_bench  # noqa: E402  (the step-tracker loader)
from opencadence import system  # noqa: E402
from opencadence.api import server as api_server  # noqa: E402
from opencadence.api import tls  # noqa: E402

QUERY = "SELECT Id, State, StepType, DueDateTime, ActionCadenceName FROM ActionCadenceStepTracker"
PARTNER = "{urn:partner.soap.sforce.com}SoapBinding"


class Timed:
    """ASGI wrapper: server-side milliseconds of each request, by path prefix."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.times: dict[str, list[float]] = {"soap": [], "rest": []}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        await self.app(scope, receive, send)
        kind = "soap" if scope["path"].startswith("/services/Soap/") else "rest"
        self.times[kind].append((time.perf_counter() - start) * 1000)


def median_ms(fn: Callable[[], Any], reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="same measurement, fewer repetitions")
    args = parser.parse_args()
    reps = 5 if args.quick else 30
    import zeep
    from simple_salesforce import Salesforce
    from zeep.transports import Transport

    work = Path(tempfile.mkdtemp(prefix="ocsoap"))
    db = f"sqlite:///{work / 'soap.db'}"
    with system.build(system.Settings(database_url=db, worker=False)) as built:
        soql_bench.load(built.engine, 2_000)
        user_id, token = built.org.accounts.create_user("bench@oc.test", "pw", admin=True)
        timed = Timed(api_server.app(built))
        port = 18461
        cert, key = tls.self_signed(work / "tls")
        config = api_server.config(timed, host="127.0.0.1", port=port, tls_files=(cert, key))  # type: ignore[arg-type]
        srv = uvicorn.Server(config)
        thread = threading.Thread(target=srv.run, daemon=True)
        thread.start()
        while not srv.started:
            time.sleep(0.05)
        try:
            session = requests.Session()
            session.trust_env = False
            session.verify = str(cert)
            client = zeep.Client(
                f"https://127.0.0.1:{port}/services/wsdl/partner",
                transport=Transport(session=session),
            )
            login = client.create_service(PARTNER, f"https://127.0.0.1:{port}/services/Soap/u/59.0")
            result = login.login("bench@oc.test", "pw" + token)
            service = client.create_service(PARTNER, result.serverUrl)
            headers = {"SessionHeader": {"sessionId": result.sessionId}}
            sf = Salesforce(
                session_id=result.sessionId,
                instance_url=f"https://127.0.0.1:{port}",
                session=session,
            )
            assert len(service.query(QUERY, _soapheaders=headers).body.result.records) == 2_000
            assert len(sf.query(QUERY)["records"]) == 2_000
            timed.times = {"soap": [], "rest": []}
            soap_client = median_ms(lambda: service.query(QUERY, _soapheaders=headers), reps)
            rest_client = median_ms(lambda: sf.query(QUERY), reps)
        finally:
            srv.should_exit = True
            thread.join(timeout=10)
    soap_server = statistics.median(timed.times["soap"])
    rest_server = statistics.median(timed.times["rest"])
    print(
        f"2,000-record query: server-side SOAP {soap_server:.1f} ms, REST {rest_server:.1f} ms; "
        f"client-visible zeep {soap_client:.1f} ms, simple-salesforce {rest_client:.1f} ms"
    )
    print(f"ratio={soap_server / rest_server:.2f} goal<=1.50")


if __name__ == "__main__":
    main()
