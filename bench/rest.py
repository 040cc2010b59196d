"""REST through real clients, in one run:

(a) a 10-record SOQL query through unmodified simple-salesforce against `opencadence serve`
    (a separate process, TLS on 127.0.0.1) vs. the same client call answered by
    simple-mockforce over the same records (in-process mock);
(b) requests/s of the query endpoint vs. a bare Starlette endpoint returning the same JSON,
    served by the same uvicorn settings (TLS, one process), one keep-alive client;
(c) the server's resident memory while a client pages through query_all of N step trackers.

    python bench/rest.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).parent))
import soql as soql_bench  # noqa: E402  (the step-tracker loader)
from opencadence import system  # noqa: E402

QUERY = "SELECT Id, LastName, Email FROM Contact WHERE FirstName = 'G7'"
#: (b) is measured in this many alternating slices of each server
SLICES = 4
HERE = Path(__file__).resolve()


def contacts(n: int) -> list[dict[str, Any]]:
    return [
        {"FirstName": f"G{i % (n // 10)}", "LastName": f"Person {i}", "Email": f"p{i}@example.com"}
        for i in range(n)
    ]


def median_ms(fn: Callable[[], Any], reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


# --- servers ----------------------------------------------------------------------------------


def start(args: list[str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(f"https://127.0.0.1:{port}/services/data/", verify=False, timeout=1)
            return proc
        except requests.RequestException:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(
        f"server on {port} did not start: {proc.stderr.read().decode() if proc.stderr else ''}"
    )


def opencadence_server(db: str, port: int, certs: Path) -> subprocess.Popen[bytes]:
    return start(
        [
            sys.executable,
            "-m",
            "opencadence",
            "serve",
            "--database",
            db,
            "--port",
            str(port),
            "--tls",
            "--cert-dir",
            str(certs),
            "--no-worker",
        ],
        port,
    )


def bare_server(port: int, certs: Path, body_file: Path) -> subprocess.Popen[bytes]:
    # -P: this folder holds collections.py, which must not shadow the standard library's
    return start(
        [sys.executable, "-P", str(HERE), "--bare", str(port), str(certs), str(body_file)], port
    )


def run_bare(port: int, certs: Path, body_file: Path) -> None:
    """A bare Starlette app returning a fixed JSON body (baseline for (b))."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    body = body_file.read_bytes()

    async def fixed(request: Any) -> Response:
        return Response(body, media_type="application/json;charset=UTF-8")

    app = Starlette(
        routes=[Route("/services/data/", fixed), Route("/services/data/v59.0/query/", fixed)]
    )
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ssl_certfile=str(certs / "cert.pem"),
        ssl_keyfile=str(certs / "key.pem"),
    )


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- the three measurements --------------------------------------------------------------------


def prepare(db: str, n_contacts: int) -> str:
    # the system clock: the token is checked by `opencadence serve`, on the system clock too
    with system.build(system.Settings(database_url=db, worker=False)) as oc:
        with oc.store.transaction() as tx:
            tx.insert_many("Contact", contacts(n_contacts))
        user_id, _ = oc.org.accounts.create_user("bench@oc.test", "pw", admin=True)
        return oc.org.accounts.open_session(user_id)


def measure_mockforce(n: int, reps: int) -> float:
    from simple_mockforce import mock_salesforce
    from simple_salesforce import Salesforce

    result: list[float] = []

    @mock_salesforce
    def run() -> None:
        sf = Salesforce(username="a", password="b", security_token="c")
        for c in contacts(n):
            sf.Contact.create(c)
        result.append(median_ms(lambda: sf.query(QUERY), reps))

    run()
    return result[0]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--bare":
        run_bare(int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="same measurements, small sizes")
    args = parser.parse_args()
    n_contacts = 2_000 if args.quick else 10_000
    reps = 20 if args.quick else 100
    trackers = 20_000 if args.quick else 1_000_000
    seconds = 2.0 if args.quick else 8.0
    import urllib3

    urllib3.disable_warnings()
    from simple_salesforce import Salesforce

    work = Path(tempfile.mkdtemp(prefix="ocrest"))
    db = f"sqlite:///{work / 'rest.db'}"
    token = prepare(db, n_contacts)
    certs = work / "tls"
    server = opencadence_server(db, 18443, certs)
    try:
        session = requests.Session()
        session.verify = str(certs / "cert.pem")
        session.trust_env = False
        sf = Salesforce(session_id=token, instance="127.0.0.1:18443", session=session)
        assert sf.query(QUERY)["totalSize"] == 10
        ours = median_ms(lambda: sf.query(QUERY), reps)
        mock = measure_mockforce(n_contacts, reps)
        print(
            f"(a) 10-record query via simple-salesforce over {n_contacts:,} contacts: "
            f"opencadence {ours:.2f} ms, simple-mockforce {mock:.2f} ms, speed-up x{mock / ours:.1f} (goal >= 10)"
        )
        body = work / "body.json"
        url = "https://127.0.0.1:18443/services/data/v59.0/query/"
        headers = {"Authorization": f"Bearer {token}"}
        body.write_bytes(session.get(url, params={"q": QUERY}, headers=headers).content)
        bare = bare_server(18444, certs, body)
        try:
            # in alternating slices: a shared machine's load falls on both alike
            ours_rps = bare_rps = 0.0
            for _ in range(SLICES):
                ours_rps += rate(session, url, {"q": QUERY}, headers, seconds / SLICES) / SLICES
                bare_rps += (
                    rate(
                        session,
                        "https://127.0.0.1:18444/services/data/v59.0/query/",
                        {"q": QUERY},
                        headers,
                        seconds / SLICES,
                    )
                    / SLICES
                )
        finally:
            bare.kill()
        print(
            f"(b) query endpoint {ours_rps:,.0f} req/s, bare Starlette {bare_rps:,.0f} req/s, "
            f"ratio {ours_rps / bare_rps:.2f} (goal >= 0.6)"
        )
    finally:
        server.kill()
        server.wait()
    peak = memory_while_paging(work, trackers, certs)
    print(
        f"(c) server RSS while paging query_all of {trackers:,} step trackers: peak {peak:.0f} MB (goal < 300, flat)"
    )
    print(f"ratio={ours_rps / bare_rps:.2f} goal>=0.60")


def rate(
    session: requests.Session,
    url: str,
    params: dict[str, str],
    headers: dict[str, str],
    seconds: float,
) -> float:
    session.get(url, params=params, headers=headers)
    count, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        session.get(url, params=params, headers=headers).raise_for_status()
        count += 1
    return count / seconds


def memory_while_paging(work: Path, trackers: int, certs: Path) -> float:
    from simple_salesforce import Salesforce

    db = f"sqlite:///{work / 'paging.db'}"
    with system.build(system.Settings(database_url=db, worker=False)) as oc:
        soql_bench.load(oc.engine, trackers)
        user_id, _ = oc.org.accounts.create_user("pager@oc.test", "pw", admin=True)
        token = oc.org.accounts.open_session(user_id)
    server = opencadence_server(db, 18445, certs)
    samples = [rss_mb(server.pid)]
    try:
        session = requests.Session()
        session.verify = str(certs / "cert.pem")
        session.trust_env = False
        sf = Salesforce(session_id=token, instance="127.0.0.1:18445", session=session)
        seen = 0
        for n, _record in enumerate(
            sf.query_all_iter("SELECT Id, State, DueDateTime FROM ActionCadenceStepTracker"), 1
        ):
            seen = n
            if n % 20_000 == 0:
                samples.append(rss_mb(server.pid))
        samples.append(rss_mb(server.pid))
        assert seen == trackers, (seen, trackers)
    finally:
        server.kill()
        server.wait()
    print(
        f"    RSS samples (MB): first {samples[0]:.0f}, after first pages {samples[1]:.0f}, last {samples[-1]:.0f}"
    )
    return max(samples)


if __name__ == "__main__":
    main()
