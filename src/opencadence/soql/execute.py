"""Run SOQL: parse, bind, compile, execute, shape, page.

``QueryService.query`` answers like REST ``query``/``queryAll``: ``{"totalSize", "done",
"records", "nextRecordsUrl"?}``. Pages resume by keyset (the page's last sort key, Id last),
never by OFFSET, so every page costs the same however deep it is and memory stays flat. Each
page boundary is stored under its query locator, so a ``nextRecordsUrl`` can be fetched again
(a client retry) and gives the same page; locators live 2 days (INVALID_QUERY_LOCATOR after).
"""

from __future__ import annotations

import json
import secrets
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from opencadence import errors, ids
from opencadence.metadata import describe
from opencadence.soql import binder, bound, compiler, parse, shape
from opencadence.storage import counts, fastread, locators, records

DEFAULT_BATCH = 2000
MIN_BATCH = 200
MAX_BATCH = 2000
LOCATOR_TTL = timedelta(days=2)
#: Aggregate results cannot be paged (Salesforce: no queryMore for GROUP BY).
MAX_AGGREGATE_ROWS = 2000


@dataclass(slots=True)
class Caller:
    """Who runs a query: their user id and time zone (date literals are in it)."""

    user_id: str
    time_zone: str = "GMT"
    #: "View All Data": sees every record; reps see only theirs (storage.visibility)
    view_all: bool = True

    @property
    def viewer(self) -> str | None:
        return None if self.view_all else self.user_id


class QueryService:
    """SOQL over one Store."""

    def __init__(self, store: records.Store, *, cache_size: int = 512, fast: bool = True) -> None:
        self.store = store
        #: first pages of reused queries through storage.fastread (False: SQLAlchemy only,
        #: which the differential test compares it with)
        self.fast = fast and fastread.supported(store.engine)
        self.meta = store.meta
        self._cache: OrderedDict[tuple[Any, ...], compiler.Compiled] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._saves = 0
        #: the locator inserts compiled for storage.fastread.write (on first use)
        self._locator_writes: tuple[fastread.Write, fastread.Write] | None = None

    # --- public API --------------------------------------------------------------------------

    def query(
        self,
        text: str,
        caller: Caller | None = None,
        *,
        version: str = describe.LATEST_VERSION,
        include_deleted: bool = False,
        batch_size: int | None = None,
    ) -> dict[str, Any]:
        """Run ``text``; the first page of records (``queryAll`` with include_deleted)."""
        caller = caller or Caller(records.AUTOMATED_USER)
        batch = clamp_batch(batch_size)
        now = self.store.clock.now()
        compiled = self._compile(text, caller, version, include_deleted, now)
        fast = self._fast_first_page(compiled, batch, version)
        if fast is not None:
            result, after = fast
        else:
            with self.store.reading() as conn:
                result, after = self._first_page(conn, compiled, batch, version)
        self._stamp_views(compiled, result)
        if after is not None:
            locator = self._save_cursor(
                text, caller, version, include_deleted, batch, result, after, now
            )
            result["nextRecordsUrl"] = next_url(
                version, include_deleted, locator, len(result["records"])
            )
        return result

    def query_more(
        self, locator: str, caller: Caller | None = None, *, version: str = describe.LATEST_VERSION
    ) -> dict[str, Any]:
        """The page after ``<locator>-<position>`` (as in a nextRecordsUrl)."""
        caller = caller or Caller(records.AUTOMATED_USER)
        cursor_id, position = _split_locator(locator)
        with self.store.reading() as conn:
            cursor, after = self._load_cursor(conn, cursor_id, position, caller)
            compiled = self._compile(
                cursor["soql"],
                Caller(caller.user_id, cursor["time_zone"], caller.view_all),
                cursor["version"],
                cursor["include_deleted"],
                cursor["query_now"].replace(tzinfo=UTC),
            )
            result, next_after = self._page(
                conn, compiled, cursor["batch_size"], cursor["version"], after, position
            )
        result["totalSize"] = cursor["total_size"]
        end = position + len(result["records"])
        if next_after is not None:
            self._save_page(cursor_id, end, next_after)
            result["nextRecordsUrl"] = next_url(version, cursor["include_deleted"], cursor_id, end)
        return result

    def compile(
        self,
        text: str,
        caller: Caller | None = None,
        *,
        version: str = describe.LATEST_VERSION,
        include_deleted: bool = False,
    ) -> compiler.Compiled:
        """``text`` parsed, bound and compiled for ``caller`` (the errors ``query`` raises for
        it), for callers that run the statement themselves (``soql.stream``: Bulk API jobs)."""
        caller = caller or Caller(records.AUTOMATED_USER)
        return self._compile(text, caller, version, include_deleted, self.store.clock.now())

    # --- compile ----------------------------------------------------------------------------

    def _compile(
        self, text: str, caller: Caller, version: str, include_deleted: bool, now: datetime
    ) -> compiler.Compiled:
        """Compile, or reuse the compiled form of the same text for the same caller and version.

        Queries whose meaning depends on the current time (date literals, SecondsOverdue) are
        compiled afresh each time, since "now" is baked into their statement.
        """
        key = (text, caller.user_id, caller.time_zone, caller.view_all, version, include_deleted)
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
                return found
        compiled = self._compile_new(text, caller, version, include_deleted, now)
        if not compiled.bq.extra.get("time_dependent"):
            if self.fast:
                compiled.fast = {}
            with self._lock:
                self._cache[key] = compiled
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return compiled

    def _compile_new(
        self, text: str, caller: Caller, version: str, include_deleted: bool, now: datetime
    ) -> compiler.Compiled:
        tree = parse(text)
        ctx = binder.Context(
            registry=self.store.registry,
            version=version,
            user_id=caller.user_id,
            time_zone=caller.time_zone,
            now=now,
            text=text,
        )
        obj = self.store.registry.get(tree.sobject.dotted)
        if obj is None or not obj.supports("query") or not obj.visible_in(version):
            self.store.registry.object(f"{tree.sobject.dotted}")  # INVALID_TYPE
            raise errors.InvalidType(f"sObject type '{tree.sobject.dotted}' is not supported.")
        bnd = binder.Binder(ctx, tree, obj)
        bq = bnd.bind()
        bq.include_deleted = include_deleted
        bq.extra["time_dependent"] = bnd.time_dependent
        bq.extra["for"] = tuple(w for w in tree.for_ if w in ("VIEW", "REFERENCE"))
        return compiler.Compiler(self.store.registry, self.meta, now, caller.viewer).compile(bq)

    # --- pages ------------------------------------------------------------------------------

    def _stamp_views(self, c: compiler.Compiled, result: dict[str, Any]) -> None:
        """FOR VIEW / FOR REFERENCE: stamp LastViewedDate / LastReferencedDate of the rows."""
        words = c.bq.extra.get("for", ())
        if not words or c.bq.aggregate or c.bq.count_only:
            return
        record_ids = [r["attributes"]["url"].rsplit("/", 1)[1] for r in result["records"]]
        for word, field in (("VIEW", "LastViewedDate"), ("REFERENCE", "LastReferencedDate")):
            if word in words:
                self.store.touch(c.bq.obj.name, record_ids, field)

    def _first_page(
        self, conn: sa.Connection, c: compiler.Compiled, batch: int, version: str
    ) -> tuple[dict[str, Any], list[Any] | None]:
        bq = c.bq
        if bq.count_only:
            total = int(conn.execute(c.select).scalar_one())
            total = max(0, total - (bq.offset or 0))
            return {
                "totalSize": min(total, bq.limit) if bq.limit is not None else total,
                "done": True,
                "records": [],
            }, None
        if bq.aggregate:
            return self._aggregate(conn, c, version), None
        return self._page(conn, c, batch, version, None, 0)

    def _fast_first_page(
        self, c: compiler.Compiled, batch: int, version: str
    ) -> tuple[dict[str, Any], list[Any] | None] | None:
        """The first page through storage.fastread: the same statements as ``_page`` and
        ``_total``, prepared once per compiled query and run on the driver. None where the
        general path is needed (no reuse, aggregates, child subqueries, inside a write
        transaction of this thread, which reads must join)."""
        bq = c.bq
        want = batch if bq.limit is None else min(batch, bq.limit)
        if (
            c.fast is None
            or want <= 0
            or bq.count_only
            or bq.aggregate
            or any(isinstance(i, bound.OutChildren) for i in bq.items)
            or self.store.in_transaction()
        ):
            return None
        engine = self.store.engine
        page = c.fast.get(want)
        if page is None:
            page = c.fast[want] = fastread.prepare(engine, self._page_stmt(c, want, None))
        fast = c.fast

        def counter() -> fastread.Prepared:
            count = fast.get("total")
            if count is None:
                stmt = counts.live_select(self.meta, bq.obj.name) if c.unfiltered else c.count
                count = fast["total"] = fastread.prepare(engine, stmt)
            return count

        def run(light: fastread.Light) -> tuple[list[Any], bool, int]:
            live = None
            if c.unfiltered:  # the maintained counter: cheap, asked with the page at once
                rows, live = light.rows_and_scalar(page, counter())
            else:
                rows = light.rows(page)
            more = len(rows) > want and (bq.limit is None or want < bq.limit)
            rows = rows[:want]
            total = len(rows)
            if more:
                if live is None:
                    live = light.scalar(counter())
                total = self._total_of(c, int(live or 0))
            return rows, more, total

        # fastread.read: on PostgreSQL a kept connection, no pool pre-ping round trip
        with records.locks_refused():
            rows, more, total = fastread.read(engine, run)
        plan = c.plan or shape.ShapePlan(bq, self.store.registry, version, c.id_index)
        c.plan = plan
        recs = plan.records(rows)
        next_key = [rows[-1][i] for i in c.key_index] if more and rows else None
        return {"totalSize": total, "done": not more, "records": recs}, next_key

    def _aggregate(self, conn: sa.Connection, c: compiler.Compiled, version: str) -> dict[str, Any]:
        rows = conn.execute(
            c.select.limit(MAX_AGGREGATE_ROWS + 1) if c.bq.limit is None else c.select
        ).all()
        if len(rows) > MAX_AGGREGATE_ROWS:
            raise errors.MalformedQuery(
                "Aggregate query does not support queryMore(), use LIMIT to restrict the results "
                "to a single batch"
            )
        plan = shape.ShapePlan(c.bq, self.store.registry, version, None)
        recs = [plan.aggregate_record(r) for r in rows]
        return {"totalSize": len(recs), "done": True, "records": recs}

    def _page(
        self,
        conn: sa.Connection,
        c: compiler.Compiled,
        batch: int,
        version: str,
        after: list[Any] | None,
        position: int,
    ) -> tuple[dict[str, Any], list[Any] | None]:
        bq = c.bq
        want = batch
        if bq.limit is not None:
            want = min(batch, bq.limit - position)
        stmt = self._page_stmt(c, want, after)
        rows = conn.execute(stmt).all() if want > 0 else []
        more = len(rows) > want and (bq.limit is None or position + want < bq.limit)
        rows = rows[:want]
        plan = c.plan or shape.ShapePlan(bq, self.store.registry, version, c.id_index)
        c.plan = plan
        recs = plan.records(rows)
        self._children(conn, bq, rows, recs, plan, version, c.viewer)
        total = position + len(recs)
        if more and after is None:
            total = self._total(conn, c)
        next_key = [rows[-1][i] for i in c.key_index] if more and rows else None
        return {"totalSize": total, "done": not more, "records": recs}, next_key

    @staticmethod
    def _page_stmt(c: compiler.Compiled, want: int, after: list[Any] | None) -> sa.Select[Any]:
        """The statement of a page of ``want`` rows (one more: is there a next page?)."""
        stmt = c.select
        if after is not None:
            stmt = stmt.where(keyset_after(c.order_exprs, after))
        elif c.bq.offset:
            stmt = stmt.offset(c.bq.offset)
        # the row count is written into the SQL, not bound: PostgreSQL's plan for a prepared
        # statement with LIMIT $1 assumes a guessed row count (a sort of every row where an
        # index scan of 2,001 would do)
        return stmt.order_by(*_order_clauses(c.order_exprs)).limit(
            sa.literal_column(str(int(max(want, 0) + 1)))
        )

    def _total(self, conn: sa.Connection, c: compiler.Compiled) -> int:
        if c.unfiltered:  # every live row matches: the maintained counter is exact
            return self._total_of(c, counts.live(conn, self.meta, c.bq.obj.name))
        return self._total_of(c, int(conn.execute(c.count).scalar_one()))

    @staticmethod
    def _total_of(c: compiler.Compiled, matching: int) -> int:
        """totalSize from the number of matching rows: OFFSET skips, LIMIT caps."""
        total = matching - (c.bq.offset or 0)
        if c.bq.limit is not None:
            total = min(total, c.bq.limit)
        return max(total, 0)

    def _children(
        self,
        conn: sa.Connection,
        bq: bound.BoundQuery,
        rows: Sequence[Any],
        recs: list[dict[str, Any]],
        plan: shape.ShapePlan,
        version: str,
        viewer: str | None,
    ) -> None:
        """Child-relationship subqueries: one batched statement per subquery for the page."""
        subqueries = [i for i in bq.items if isinstance(i, bound.OutChildren)]
        if not subqueries or not rows:
            return
        parent_ids = [r["attributes"]["url"].rsplit("/", 1)[1] for r in recs]
        for sub in subqueries:
            grouped = self._child_records(conn, sub, parent_ids, version, viewer)
            for rec, pid in zip(recs, parent_ids):
                children = grouped.get(pid)
                rec[sub.key] = (
                    {"totalSize": len(children), "done": True, "records": children}
                    if children
                    else None
                )

    def _child_records(
        self,
        conn: sa.Connection,
        sub: bound.OutChildren,
        parent_ids: list[str],
        version: str,
        viewer: str | None,
    ) -> dict[str, list[dict[str, Any]]]:
        child = compiler.Compiler(
            self.store.registry, self.meta, self.store.clock.now(), viewer
        ).compile(sub.query, prefix="ch")
        root = _root_alias(child)
        fk_col = root.c[sub.fk.name]
        order = _order_clauses(child.order_exprs)
        numbered = child.select.add_columns(fk_col.label("parent_fk")).where(fk_col.in_(parent_ids))
        if sub.query.limit is not None or sub.query.offset:
            rank = sa.func.row_number().over(partition_by=fk_col, order_by=order).label("rn")
            inner = numbered.add_columns(rank).subquery("children")
            lo = sub.query.offset or 0
            conds = [inner.c.rn > lo]
            if sub.query.limit is not None:
                conds.append(inner.c.rn <= lo + sub.query.limit)
            stmt = sa.select(inner).where(*conds).order_by(inner.c.parent_fk, inner.c.rn)
        else:
            stmt = numbered.order_by(fk_col, *order)
        rows = conn.execute(stmt).all()
        plan = shape.ShapePlan(
            sub.query,
            self.store.registry,
            version,
            child.id_index,
        )
        fk_index = len(child.select.selected_columns)
        grouped: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            grouped.setdefault(r[fk_index], []).append(plan.record(r))
        return grouped

    # --- cursors ----------------------------------------------------------------------------

    def _save_cursor(
        self,
        text: str,
        caller: Caller,
        version: str,
        include_deleted: bool,
        batch: int,
        result: dict[str, Any],
        after: list[Any],
        now: datetime,
    ) -> str:
        locator = ids.to18("0r8" + "".join(secrets.choice(ids.BASE62) for _ in range(12)))
        cursor = {
            "locator": locator,
            "user_id": caller.user_id,
            "soql": text,
            "version": version,
            "include_deleted": include_deleted,
            "batch_size": batch,
            "total_size": result["totalSize"],
            "time_zone": caller.time_zone,
            "query_now": now.replace(tzinfo=None),
            "created_at": now.replace(tzinfo=None),
        }
        alone = not self.store.in_transaction()  # not a savepoint of a caller's transaction
        self._saves += 1
        if alone and self.fast and self._saves % 100 != 1:
            self._write_locator(cursor, len(result["records"]), encode_key(after))
            return locator
        with self.store.transaction(caller.user_id) as tx:
            locators.save_cursor(
                tx.conn,
                self.meta,
                cursor,
                len(result["records"]),
                encode_key(after),
                relaxed=alone,
            )
            if self._saves % 100 == 1:  # expired locators are swept now and then, not per query
                locators.prune(tx.conn, self.meta, now.replace(tzinfo=None) - LOCATOR_TTL)
        return locator

    def _write_locator(self, cursor: dict[str, Any], position: int, after_key: str) -> None:
        """``locators.save_cursor`` as one driver-level transaction (storage.fastread.write):
        a locator row is state no event, trigger or row count follows, and going around
        ``Store.transaction`` (a pooled connection pinged, a Tx) is most of its cost."""
        if self._locator_writes is None:
            self._locator_writes = locators.prepared_saves(self.store.engine, self.meta)
        cursor_row, page_row = self._locator_writes
        page = {"locator": cursor["locator"], "position": position, "after_key": after_key}
        # a write like any other: never on the API's event loop, and counted as one there
        records.begin_write(self.store)
        with records.locks_refused():
            fastread.write(self.store.engine, [(cursor_row, cursor), (page_row, page)])

    def _save_page(self, locator: str, position: int, after: list[Any]) -> None:
        alone = not self.store.in_transaction()
        with self.store.transaction() as tx:
            locators.save_page(
                tx.conn, self.meta, locator, position, encode_key(after), relaxed=alone
            )

    def _load_cursor(
        self, conn: sa.Connection, locator: str, position: int, caller: Caller
    ) -> tuple[dict[str, Any], list[Any]]:
        cursor, key = locators.load(conn, self.meta, locator, position)
        now = self.store.clock.now().replace(tzinfo=None)
        if (
            cursor is None
            or cursor["created_at"] + LOCATOR_TTL < now
            or cursor["user_id"] != caller.user_id
            or key is None
        ):
            raise errors.InvalidQueryLocator("invalid query locator")
        return cursor, decode_key(key)


def clamp_batch(size: int | None) -> int:
    """Sforce-Query-Options batchSize: 200..2000, default 2000 (a hint, as Salesforce says)."""
    if size is None:
        return DEFAULT_BATCH
    return max(MIN_BATCH, min(MAX_BATCH, int(size)))


def next_url(version: str, include_deleted: bool, locator: str, position: int) -> str:
    kind = "queryAll" if include_deleted else "query"
    return f"/services/data/v{version}/{kind}/{locator}-{position}"


def _split_locator(value: str) -> tuple[str, int]:
    locator, _, position = value.rpartition("-")
    if not locator or not position.isdigit() or not ids.is_valid(locator):
        raise errors.InvalidQueryLocator("invalid query locator")
    return ids.parse(locator), int(position)


def _root_alias(c: compiler.Compiled) -> sa.FromClause:
    froms = c.select.get_final_froms()
    node: Any = froms[0]
    while hasattr(node, "left"):
        node = node.left
    return node  # type: ignore[no-any-return]


def _order_clauses(order: list[tuple[Any, bool, bool]]) -> list[Any]:
    out = []
    for expr, desc, nulls_first in order:
        clause = expr.desc() if desc else expr.asc()
        out.append(clause.nulls_first() if nulls_first else clause.nulls_last())
    return out


def keyset_after(order: list[tuple[Any, bool, bool]], key: Sequence[Any]) -> Any:
    """Rows strictly after ``key`` in the ORDER BY (NULLS FIRST/LAST respected)."""
    alternatives = []
    for i, (expr, desc, nulls_first) in enumerate(order):
        equal_before = [_equal(e, key[j]) for j, (e, _d, _n) in enumerate(order[:i])]
        later = _later(expr, desc, nulls_first, key[i])
        if later is not None:
            alternatives.append(sa.and_(*equal_before, later))
    return sa.or_(*alternatives) if alternatives else sa.false()


def _equal(expr: Any, value: Any) -> Any:
    return expr.is_(None) if value is None else expr == value


def _later(expr: Any, desc: bool, nulls_first: bool, value: Any) -> Any:
    if value is None:
        return expr.is_not(None) if nulls_first else None
    beyond = expr < value if desc else expr > value
    return sa.or_(beyond, expr.is_(None)) if not nulls_first else beyond


def encode_key(values: Sequence[Any]) -> str:
    def enc(v: Any) -> Any:
        if isinstance(v, datetime):
            return {"dt": v.isoformat()}
        if isinstance(v, date):
            return {"d": v.isoformat()}
        if isinstance(v, Decimal):
            return {"n": str(v)}
        return v

    return json.dumps([enc(v) for v in values])


def decode_key(text: str) -> list[Any]:
    def dec(v: Any) -> Any:
        if isinstance(v, dict):
            if "dt" in v:
                return datetime.fromisoformat(v["dt"])
            if "d" in v:
                return date.fromisoformat(v["d"])
            return Decimal(v["n"])
        return v

    return [dec(v) for v in json.loads(text)]
