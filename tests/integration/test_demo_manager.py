"""The demo's manager: seeded with the rep reporting to them, and restored by
``ensure_manager`` (what ``opencadence demo`` runs on every start) in an org seeded before
the demo had one or whose rep was moved (SQLite and PostgreSQL)."""

from __future__ import annotations

from opencadence import demo, system


def _manager_of(oc: system.System, username: str) -> object:
    user = oc.org.accounts.find_user(username)
    assert user is not None
    return user["ManagerId"]


def test_the_demo_seeds_a_manager_of_the_rep(oc: system.System) -> None:
    demo.seed(oc.org)
    manager = oc.org.accounts.find_user(demo.MANAGER)
    assert manager is not None and manager["IsActive"]
    assert _manager_of(oc, demo.REP) == manager["Id"]
    assert oc.org.accounts.authenticate(demo.MANAGER, demo.MANAGER_PASSWORD) == manager["Id"]
    # idempotent: the same user, still the rep's manager
    assert demo.ensure_manager(oc.org) == manager["Id"]
    # an org whose rep lost their manager (as one seeded before the demo had one): restored
    rep = oc.org.accounts.find_user(demo.REP)
    assert rep is not None
    oc.org.accounts.set_manager(str(rep["Id"]), None)
    assert _manager_of(oc, demo.REP) is None
    assert demo.ensure_manager(oc.org) == manager["Id"]
    assert _manager_of(oc, demo.REP) == manager["Id"]
