"""Per-test cost of the pytest plugin's org vs simple-mockforce's decorator, in one run.

The same ten-record test body (create ten contacts through simple-salesforce, query them back)
runs N times under each: with ``opencadence.testing.LocalOrg`` (what the ``opencadence_org``
fixture does per test: copy the prepared database, build the org on it, mount it on the
session's TLS server, log a client in; unmount and drop the copy afterwards) and inside ``@mock_salesforce`` (an in-process
mock, no server). The session's one-off template preparation and server start are reported
apart, since pytest pays them once. Goal: within 2x of the mock (ratio = mock time / ours >= 0.5).

    python bench/fixture.py [--quick] [--database postgresql://…]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from opencadence import testing


def ten_record_test(sf: Any) -> None:
    for i in range(10):
        sf.Contact.create({"LastName": f"Person {i}", "Email": f"p{i}@example.com"})
    found = sf.query("SELECT Id, LastName FROM Contact WHERE Email LIKE 'p%'")
    assert found["totalSize"] == 10, found


def ours(template: testing.Template, server: testing.Server, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        with testing.LocalOrg(template, server=server) as org:
            ten_record_test(org.sf)
        times.append(time.perf_counter() - start)
    return times


def mockforce(runs: int) -> list[float]:
    from simple_mockforce import mock_salesforce
    from simple_salesforce import Salesforce

    @mock_salesforce
    def one() -> None:
        ten_record_test(Salesforce(username="a", password="b", security_token="c"))

    times = []
    for _ in range(runs):
        start = time.perf_counter()
        one()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="same measurement, fewer runs")
    parser.add_argument(
        "--database", default=None, help="a PostgreSQL URL for the orgs (default: SQLite files)"
    )
    args = parser.parse_args()
    runs = 5 if args.quick else 30
    start = time.perf_counter()
    with testing.Template.prepared(args.database) as template, testing.Server(template) as server:
        prepared = time.perf_counter() - start
        ours(template, server, 1)  # warm-up: imports, first TLS handshake
        mine = statistics.median(ours(template, server, runs))
    mockforce(1)
    mock = statistics.median(mockforce(runs))
    print(f"session template and server (once per pytest session): {prepared:.2f} s")
    print(
        f"per test, median of {runs}: opencadence_org {mine * 1000:.0f} ms, "
        f"simple-mockforce {mock * 1000:.0f} ms"
    )
    print(f"ratio={mock / mine:.2f} goal>=0.50")


if __name__ == "__main__":
    main()
