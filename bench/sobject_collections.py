"""Creating contacts three ways in one run, on SQLite:

(a) the storage layer directly (``Tx.insert`` per record, one transaction per 200, change
    events included): the baseline;
(b) sObject Collections through `opencadence serve` (a separate process, TLS on 127.0.0.1):
    ``POST /composite/sobjects`` with 200 records per call, allOrNone false (each record in its
    own transaction, as jsforce sends it) and allOrNone true (one transaction per call);
(c) single-record ``POST /sobjects/Contact`` through the same server.

The headline is (b) with allOrNone false against (a) (goal: at least half the storage rate).

    python bench/sobject_collections.py [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

import rest as rest_bench  # the bench that starts `opencadence serve`
from opencadence import system

PER_CALL = 200


def contact(i: int) -> dict[str, Any]:
    return {"FirstName": "Bench", "LastName": f"Person {i}", "Email": f"p{i}@example.com"}


def fresh(db: str) -> str:
    """A migrated database with an admin; the admin's session token."""
    with system.build(system.Settings(database_url=db, worker=False)) as oc:
        user_id, _ = oc.org.accounts.create_user("bench@oc.test", "pw", admin=True)
        return oc.org.accounts.open_session(user_id)


def storage_rate(db: str, n: int) -> float:
    with system.build(system.Settings(database_url=db, worker=False)) as oc:
        start = time.perf_counter()
        for first in range(0, n, PER_CALL):
            with oc.store.transaction() as tx:
                for i in range(first, min(n, first + PER_CALL)):
                    tx.insert("Contact", contact(i))
        return n / (time.perf_counter() - start)


def collections_rate(http: requests.Session, base: str, n: int, all_or_none: bool) -> float:
    start = time.perf_counter()
    for first in range(0, n, PER_CALL):
        records = [
            {"attributes": {"type": "Contact"}, **contact(i)}
            for i in range(first, min(n, first + PER_CALL))
        ]
        r = http.post(
            f"{base}/composite/sobjects", json={"allOrNone": all_or_none, "records": records}
        )
        r.raise_for_status()
        assert all(x["success"] for x in r.json()), r.text[:300]
    return n / (time.perf_counter() - start)


def single_rate(http: requests.Session, base: str, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        r = http.post(f"{base}/sobjects/Contact", json=contact(i))
        r.raise_for_status()
    return n / (time.perf_counter() - start)


def served(work: Path, name: str, port: int, measure: Any) -> float:
    db = f"sqlite:///{work / name}"
    token = fresh(db)
    certs = work / "tls"
    server = rest_bench.opencadence_server(db, port, certs)
    try:
        http = requests.Session()
        http.verify = str(certs / "cert.pem")
        http.trust_env = False
        http.headers["Authorization"] = f"Bearer {token}"
        rate: float = measure(http, f"https://127.0.0.1:{port}/services/data/v59.0")
        return rate
    finally:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="same measurements, small sizes")
    args = parser.parse_args()
    n = 1_000 if args.quick else 10_000
    singles = 100 if args.quick else 1_000
    import urllib3

    urllib3.disable_warnings()
    work = Path(tempfile.mkdtemp(prefix="occoll"))
    direct = storage_rate(f"sqlite:///{work / 'storage.db'}", n)
    print(f"(a) storage layer: {direct:,.0f} contacts/s ({n:,})")
    each = served(work, "each.db", 18453, lambda h, b: collections_rate(h, b, n, False))
    print(f"(b) /composite/sobjects, 200 per call, allOrNone false: {each:,.0f} contacts/s")
    whole = served(work, "whole.db", 18454, lambda h, b: collections_rate(h, b, n, True))
    print(f"    /composite/sobjects, 200 per call, allOrNone true: {whole:,.0f} contacts/s")
    one = served(work, "single.db", 18455, lambda h, b: single_rate(h, b, singles))
    print(f"(c) single POST /sobjects/Contact: {one:,.0f} contacts/s ({singles:,})")
    print(f"collections / single POSTs: x{each / one:.1f}")
    print(f"ratio={each / direct:.2f} goal>=0.50")


if __name__ == "__main__":
    main()
