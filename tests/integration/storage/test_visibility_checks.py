"""The single-record checks of storage/visibility.py: visibility of one record, the ManagerId
chain (cycles and depth), on both databases."""

from __future__ import annotations

from opencadence.storage import records, visibility


def _user(tx: records.Tx, name: str, manager: str | None = None) -> str:
    return tx.insert(
        "User",
        {
            "Username": f"{name}@chain.test",
            "LastName": name,
            "Alias": name[:8],
            "Email": f"{name}@chain.test",
            "TimeZoneSidKey": "GMT",
            "LocaleSidKey": "en_US",
            "LanguageLocaleKey": "en_US",
            "EmailEncodingKey": "UTF-8",
            "ManagerId": manager,
        },
        system=True,
    )


def test_acts_for_follows_the_manager_chain_and_stops_at_a_cycle(store: records.Store) -> None:
    with store.transaction() as tx:
        top = _user(tx, "top")
        mid = _user(tx, "mid", top)
        low = _user(tx, "low", mid)
        peer = _user(tx, "peer", top)
        a = _user(tx, "a")
        b = _user(tx, "b", a)
        tx.update("User", a, {"ManagerId": b})  # a cycle: a <-> b
    meta = store.meta
    with store.reading() as conn:
        assert visibility.managers_of(conn, meta, low) == [mid, top]
        assert visibility.acts_for(conn, meta, top, low)
        assert visibility.acts_for(conn, meta, low, low)
        assert not visibility.acts_for(conn, meta, low, mid)  # upwards: no
        assert not visibility.acts_for(conn, meta, peer, low)  # sideways: no
        assert not visibility.acts_for(conn, meta, low, None)
        assert visibility.managers_of(conn, meta, a) == [b]  # the cycle ends
        assert visibility.acts_for(conn, meta, a, b) and visibility.acts_for(conn, meta, b, a)


def test_record_visible_applies_the_rule_and_ignores_deleted(store: records.Store) -> None:
    with store.transaction() as tx:
        rep = _user(tx, "rep")
        other = _user(tx, "other")
    with store.transaction(rep) as tx:
        mine = tx.insert("Contact", {"LastName": "Mine"})
    with store.transaction(other) as tx:
        theirs = tx.insert("Contact", {"LastName": "Theirs"})
    meta = store.meta
    with store.reading() as conn:
        assert visibility.record_visible(conn, meta, "Contact", mine, rep)
        assert not visibility.record_visible(conn, meta, "Contact", theirs, rep)
        assert visibility.record_visible(conn, meta, "Contact", theirs, None)  # an admin
        assert visibility.visible_owners(conn, meta, "Contact", [mine, theirs], None) == {
            mine: rep,
            theirs: other,
        }
    with store.transaction(rep) as tx:
        tx.delete("Contact", mine)
    with store.reading() as conn:
        assert not visibility.record_visible(conn, meta, "Contact", mine, rep)
        assert visibility.visible_owners(
            conn, meta, "Contact", [mine], rep, include_deleted=True
        ) == {mine: rep}
