"""Run SOSL searches: ``SearchService.search`` answers as REST ``/search`` does.

``{"searchRecords": [record, ...]}``: the records of each RETURNING object in turn (every
searchable object, Id only, without RETURNING), each shaped as a SOQL record with its
``attributes``, at most the object's LIMIT and at most the statement's LIMIT (2,000 when none)
in all. Records the caller may not see are never matched (the SOQL compiler's visibility
predicate is part of every statement). ``parameterized`` builds the same search from
``/parameterizedSearch``'s parameters.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from opencadence import errors
from opencadence.metadata import describe
from opencadence.soql import execute as soql_execute
from opencadence.soql import shape
from opencadence.sosl import compiler, nodes, parser, terms
from opencadence.storage import records, search_index

#: How many matched documents a search with wildcards the index cannot decide examines per
#: object (the exact check runs on them in Python).
MAX_CANDIDATES = 20_000
#: The best-ranked documents a search ordered by relevance looks among first, then second
#: (at least; more when it wants more rows), before looking among all of them.
FIRST_TIER = 64
SECOND_TIER = 2048


@dataclass(slots=True)
class Plan:
    """A search compiled for one caller: its RETURNING statements and what the index is asked."""

    search: nodes.Search
    targets: list[compiler.Target]
    wanted: search_index.Match | None
    check: compiler.Exact | None  # None: the index decides every term exactly


class SearchService:
    """SOSL over one Store."""

    def __init__(self, store: records.Store, *, cache_size: int = 512) -> None:
        self.store = store
        self.meta = store.meta
        self._cache: OrderedDict[tuple[Any, ...], Plan] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def search(
        self,
        text: str,
        caller: soql_execute.Caller | None = None,
        *,
        version: str = describe.LATEST_VERSION,
    ) -> dict[str, Any]:
        """Run the SOSL statement ``text`` (compiled once per text, caller and version, unless
        its meaning depends on "now": date literals)."""
        caller = caller or soql_execute.Caller(records.AUTOMATED_USER)
        key = (text, caller.user_id, caller.time_zone, caller.view_all, version)
        with self._lock:
            plan = self._cache.get(key)
            if plan is not None:
                self._cache.move_to_end(key)
        if plan is None:
            plan = self.plan(parser.parse(text), text, caller, version)
            if not any(t.time_dependent for t in plan.targets):
                with self._lock:
                    self._cache[key] = plan
                    if len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
        return self.execute(plan, version)

    def run(
        self,
        search: nodes.Search,
        text: str,
        caller: soql_execute.Caller | None = None,
        *,
        version: str = describe.LATEST_VERSION,
    ) -> dict[str, Any]:
        caller = caller or soql_execute.Caller(records.AUTOMATED_USER)
        return self.execute(self.plan(search, text, caller, version), version)

    def plan(
        self, search: nodes.Search, text: str, caller: soql_execute.Caller, version: str
    ) -> Plan:
        now = self.store.clock.now()
        returning = search.returning or tuple(
            nodes.Returning(o.name, None)
            for o in self.store.registry
            if search_index.searchable(o) and o.visible_in(version) and o.supports("query")
        )
        targets = [
            compiler.bind_target(
                self.store.registry,
                self.meta,
                item,
                version=version,
                user_id=caller.user_id,
                time_zone=caller.time_zone,
                viewer=caller.viewer,
                now=now,
                text=text,
            )
            for item in returning
        ]
        tree = compiler.patterns(search.expr)
        if tree is None:
            raise errors.InvalidSearch(f"{terms.TOO_SHORT}: {search.find_text.strip()}")
        check = None if compiler.is_exact(tree) else compiler.Exact(tree, search.group)
        return Plan(search, targets, compiler.index_match(tree), check)

    def execute(self, plan: Plan, version: str) -> dict[str, Any]:
        search = plan.search
        remaining = parser.MAX_LIMIT if search.limit is None else search.limit
        out: list[dict[str, Any]] = []
        with self.store.reading() as conn:
            for target in plan.targets:
                if remaining <= 0:
                    break
                found = self._records(conn, plan, target, remaining, version)
                out += found
                remaining -= len(found)
        return {"searchRecords": out}

    def _records(
        self,
        conn: records.Connection,
        plan: Plan,
        target: compiler.Target,
        remaining: int,
        version: str,
    ) -> list[dict[str, Any]]:
        """The target's records. Ordered by relevance, they are looked for among the index's
        best-ranked documents first, then among more, then among all, so a common word costs
        the ranking of its matches, not a join of each of them with the object's table."""
        bq = target.bq
        want = remaining if bq.limit is None else min(bq.limit, remaining)
        offset = bq.offset or 0
        need = offset + want
        tiers: list[int | None] = [None]
        if not bq.order:
            tiers = [max(FIRST_TIER, 4 * need), max(SECOND_TIER, 64 * need), None]
        check = plan.check
        rows: Sequence[Any] = []
        for best in tiers:
            matched = search_index.matches(conn, self.meta, plan.wanted, plan.search.group, best)
            stmt, first_text = compiler.statement(target, matched, with_text=check is not None)
            if check is None:
                rows = conn.execute(stmt.offset(offset).limit(want)).all()
            else:
                kept = []
                for row in conn.execute(stmt.limit(MAX_CANDIDATES)):
                    doc = dict(zip(search_index.GROUPS, row[first_text : first_text + 4]))
                    if check(doc):
                        kept.append(row)
                        if len(kept) >= need:
                            break
                rows = kept[offset:]
            if len(rows) >= want or best is None:
                break
            # short: look among more documents only if there were more than these
            if conn.execute(sa.select(sa.func.count()).select_from(matched)).scalar_one() < best:
                break
        c = target.compiled
        if c.plan is None:
            c.plan = shape.ShapePlan(bq, self.store.registry, version, c.id_index)
        shaper: shape.ShapePlan = c.plan
        return shaper.records(rows)

    # --- parameterizedSearch ----------------------------------------------------------------

    def parameterized(
        self,
        params: Mapping[str, Any],
        caller: soql_execute.Caller | None = None,
        *,
        version: str = describe.LATEST_VERSION,
    ) -> dict[str, Any]:
        """``/parameterizedSearch``: ``q`` (a search expression, no FIND), ``in``, ``fields``
        (every object's), ``sobjects`` ([{name, fields, limit, where, orderBy}]),
        ``overallLimit`` and ``defaultLimit``."""
        q = params.get("q")
        if not isinstance(q, str) or not q.strip():
            raise errors.MalformedSearch("The q parameter is required: the text to search for.")
        expr = terms.parse_expression(q)
        group = str(params.get("in") or "ALL").upper()
        if group.endswith("_FIELDS"):
            group = group[: -len("_FIELDS")]
        if group not in nodes.GROUPS:
            raise errors.InvalidSearch(f"Invalid value for in: {params.get('in')}")
        fields = _names(params.get("fields"), "fields")
        default_limit = _number(params.get("defaultLimit"), "defaultLimit")
        overall = _number(params.get("overallLimit"), "overallLimit")
        specs = params.get("sobjects") or []
        if not isinstance(specs, list):
            raise errors.InvalidSearch("sobjects must be a list of objects")
        returning = tuple(_returning(s, fields, default_limit) for s in specs)
        if not returning and fields:
            raise errors.InvalidSearch("fields need sobjects to apply to")
        search = nodes.Search(
            expr, group, returning, min(overall, parser.MAX_LIMIT) if overall else None, q
        )
        return self.run(search, q, caller, version=version)


def _names(value: Any, what: str) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    raise errors.InvalidSearch(f"{what} must be a list of field names")


def _number(value: Any, what: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise errors.InvalidSearch(f"{what} must be a number: {value}") from None
    if number < 1:
        raise errors.InvalidSearch(f"{what} must be a positive number: {value}")
    return number


def _returning(spec: Any, fields: list[str], default_limit: int | None) -> nodes.Returning:
    """One object of ``sobjects`` as the RETURNING item SOSL would have written for it."""
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        raise errors.InvalidSearch("each of sobjects needs a name")
    own = _names(spec.get("fields"), "fields") or fields or ["Id"]
    limit = _number(spec.get("limit"), "limit") or default_limit
    clause = ", ".join(own)
    for key, word in (("where", "WHERE"), ("orderBy", "ORDER BY")):
        value = spec.get(key)
        if value:
            clause += f" {word} {value}"
    if limit is not None:
        clause += f" LIMIT {min(limit, parser.MAX_LIMIT)}"
    text = f"FIND {{xx}} RETURNING {spec['name']}({clause})"
    return parser.parse(text).returning[0]
