"""Calculated fields: how each ``formula`` named in the registry is derived from a row.

Values are computed when read, never stored, so they are never stale. Each formula is declared
once, in ``FORMULAS``, with its two forms side by side: ``python`` computes the value of a row
(records read by id) and ``sql`` builds the same value as a SQL expression, so the SOQL
compiler can select, filter and sort by calculated fields in the database. The two forms must
agree exactly, value and type, on both databases (tests/integration/soql/test_constructs.py).

SecondsOverdue (opencadence's reading of the seed's definition):
- no DueDateTime → null;
- the action was taken → seconds from DueDateTime to ActionTakenDateTime, 0 if on time;
- the step closed without action (skipped, exited) → seconds from DueDateTime to
  CompletionDate, 0 if on time;
- still open → seconds from DueDateTime to now when the due date has passed, else null.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from opencadence.storage import dialect

Row = Mapping[str, Any]
Col = sa.ColumnElement[Any]
#: The column of a field of the row's table; raises LookupError for a field without a column.
ColumnLookup = Callable[[str], Col]
PythonForm = Callable[[Row, datetime], Any]
SqlForm = Callable[[ColumnLookup, datetime], Col]


@dataclass(frozen=True, slots=True)
class Formula:
    """One calculated field's derivation: a value from a row, and the same as SQL."""

    python: PythonForm
    sql: SqlForm


CALL_OUTCOMES = (
    "AllCallsCallBackLater",
    "AllCallsLeftVoicemail",
    "AllCallsMeaningfulConnect",
    "AllCallsNotInterested",
    "AllCallsUncategorized",
    "AllCallsUnqualified",
)

#: Rate formulas of the monthly metrics: (numerator field, denominator field). A rate is a
#: percentage with 2 decimals, null when the denominator is empty or zero.
RATES: dict[str, tuple[str, str]] = {
    "trackable_recipient_send_hrd_bnc_rt": (
        "RecipientsHardBounced",
        "HrdBncTrackableRecipientSends",
    ),
    "trackable_recipient_send_ooo_rate": ("RecipientsOutOfOffice", "OooTrackableRecipientSends"),
    "trackable_recipient_send_reply_rt": ("RecipientReplies", "ReplyTrackableRecipientSends"),
    "trackable_recipient_send_sft_bnc_rt": (
        "RecipientsSoftBounced",
        "SftBncTrackableRecipientSends",
    ),
    "trackable_send_hard_bounce_rate": ("AllEmailsHardBouncedCount", "HardBounceTrackableSends"),
    "trackable_send_link_click_rate": ("AllEmailsLinkClickedCount", "LinkClickTrackableSends"),
    "trackable_send_open_rate": ("AllEmailsOpenedCount", "OpenTrackableSends"),
    "trackable_send_out_of_office_rate": ("AllEmailsOutOfOfficeCount", "OutOfOfficeTrackableSends"),
    "trackable_send_reply_rate": ("AllEmailsRepliedCount", "ReplyTrackableSends"),
    "trackable_send_soft_bounce_rate": ("AllEmailsSoftBouncedCount", "SoftBounceTrackableSends"),
}

# --- SQL building blocks ------------------------------------------------------------------------

_int = dialect.inline_int
_div = dialect.int_div


def _dbl(n: int) -> Col:
    return sa.cast(_int(n), sa.Double())


def _zero_if_null(col: ColumnLookup, name: str) -> Col:
    """``row.get(name) or 0``."""
    return sa.func.coalesce(col(name), _int(0), type_=sa.Integer())


def _max0(value: Col) -> Col:
    return sa.case((value > _int(0), value), else_=_int(0))


def _sum(values: Sequence[Col]) -> Col:
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total


def _bool(condition: Col) -> Col:
    """A condition as a never-null boolean value (Python returns False, not None)."""
    return sa.type_coerce(sa.case((condition, sa.true()), else_=sa.false()), sa.Boolean())


# --- percentages --------------------------------------------------------------------------------


def _percent(numerator: float, denominator: float | None) -> float | None:
    if not denominator:
        return None
    return round(100.0 * numerator / denominator, 2)


def _cents(numerator: Col, denominator: Col) -> Col:
    """round(100 * n / d, 2) * 100 exactly as Python computes it, for n >= 0 and d > 0.

    Python rounds the double v = 100.0 * n / d half-to-even by its exact binary value; doing
    that on doubles in SQL would differ near ties, so the rounding is done on integers:
    q = floor(20000 n / d) is twice the exact cents. Off a tie the nearest integer is the
    answer (v's error is far smaller than the distance to a tie for any realistic n). At a
    tie (q odd, no remainder) v is exactly the tie when 25 divides q (half-to-even), else v
    lies just above or below it: err = q - 200 v is computed exactly in double arithmetic,
    every subtraction being exact by Sterbenz's lemma (each pair is within a factor of 2).
    """
    scaled = sa.cast(numerator, sa.BigInteger()) * _int(20000)
    q = _div(scaled, denominator)
    k = _div(q, _int(2))
    v = sa.cast(q, sa.Double()) / _dbl(200)
    err: Col = ((sa.cast(q, sa.Double()) - _dbl(128) * v) - _dbl(64) * v) - _dbl(8) * v
    return sa.case(
        (
            sa.or_(scaled % denominator != _int(0), q % _int(2) == _int(0)),
            _div(scaled + denominator, _int(2) * denominator),
        ),
        (q % _int(25) == _int(0), k + k % _int(2)),
        (err < _dbl(0), k + _int(1)),
        else_=k,
    )


def _percent_sql(numerator: Col, denominator: Col) -> Col:
    """``_percent`` in SQL: null when the denominator is null or 0."""
    negative = sa.or_(
        sa.and_(numerator < _int(0), denominator > _int(0)),
        sa.and_(numerator > _int(0), denominator < _int(0)),
    )
    sign = sa.case((negative, _int(-1)), else_=_int(1))
    magnitude = sa.func.abs(numerator, type_=sa.BigInteger())
    cents = _cents(magnitude, sa.func.abs(denominator, type_=sa.BigInteger()))
    value = sa.cast(sign * cents, sa.Double()) / _dbl(100)
    empty = sa.or_(denominator.is_(None), denominator == _int(0))
    return sa.type_coerce(sa.case((empty, sa.null()), else_=value), sa.Double())


def _rate(numerator: str, denominator: str) -> Formula:
    def python(row: Row, now: datetime) -> float | None:
        return _percent(row.get(numerator) or 0, row.get(denominator))

    def sql(col: ColumnLookup, now: datetime) -> Col:
        return _percent_sql(_zero_if_null(col, numerator), col(denominator))

    return Formula(python, sql)


# --- the formulas: each Python form followed by its SQL form ---------------------------------


def _seconds(later: datetime, earlier: datetime) -> int:
    return int((later - earlier).total_seconds())


def seconds_overdue(row: Row, now: datetime) -> int | None:
    due = row.get("DueDateTime")
    if due is None:
        return None
    end = row.get("ActionTakenDateTime") or row.get("CompletionDate")
    if end is not None:
        return max(0, _seconds(end, due))
    return _seconds(now, due) if now > due else None


def _seconds_overdue_sql(col: ColumnLookup, now: datetime) -> Col:
    due = col("DueDateTime")
    end = sa.func.coalesce(col("ActionTakenDateTime"), col("CompletionDate"), type_=sa.DateTime())
    at = sa.literal(now, sa.DateTime())
    result = sa.case(
        (due.is_(None), sa.null()),
        (end.is_not(None), _max0(dialect.seconds_between(end, due))),
        (at > due, dialect.seconds_between(at, due)),
        else_=sa.null(),
    )
    return sa.type_coerce(result, sa.Integer())


def is_action_taken(row: Row, now: datetime) -> bool:
    return row.get("ActionTakenDateTime") is not None


def _is_action_taken_sql(col: ColumnLookup, now: datetime) -> Col:
    return col("ActionTakenDateTime").is_not(None)


def is_orphan(row: Row, now: datetime) -> bool:
    return row.get("GraphState") == "Orphaned"


def _is_orphan_sql(col: ColumnLookup, now: datetime) -> Col:
    return _bool(col("GraphState") == "Orphaned")


def all_total_calls_count(row: Row, now: datetime) -> int:
    return sum(row.get(name) or 0 for name in CALL_OUTCOMES)


def _all_total_calls_count_sql(col: ColumnLookup, now: datetime) -> Col:
    return _sum([_zero_if_null(col, n) for n in CALL_OUTCOMES])


def all_emails_bounced_count(row: Row, now: datetime) -> int:
    return (row.get("AllEmailsHardBouncedCount") or 0) + (row.get("AllEmailsSoftBouncedCount") or 0)


def _all_emails_bounced_count_sql(col: ColumnLookup, now: datetime) -> Col:
    return _zero_if_null(col, "AllEmailsHardBouncedCount") + _zero_if_null(
        col, "AllEmailsSoftBouncedCount"
    )


def all_emails_sent_count(row: Row, now: datetime) -> int:
    """Monthly metrics: tracked plus untracked sends."""
    return (row.get("AllEmailsTrackedSentCount") or 0) + (
        row.get("AllEmailsUntrackedSentCount") or 0
    )


def _all_emails_sent_count_sql(col: ColumnLookup, now: datetime) -> Col:
    return _zero_if_null(col, "AllEmailsTrackedSentCount") + _zero_if_null(
        col, "AllEmailsUntrackedSentCount"
    )


def _sent(row: Row, now: datetime) -> int:
    # AllEmailsSentCount is stored on ActionCadenceStep but derived on the monthly metric.
    if "AllEmailsSentCount" in row:
        return int(row["AllEmailsSentCount"] or 0)
    return all_emails_sent_count(row, now)


def _sent_sql(col: ColumnLookup, now: datetime) -> Col:
    # ``col`` raises LookupError (KeyError) for a field without a column, where the Python
    # form checks ``"AllEmailsSentCount" in row``.
    try:
        stored = col("AllEmailsSentCount")
    except LookupError:
        return _all_emails_sent_count_sql(col, now)
    return sa.func.coalesce(stored, _int(0), type_=sa.Integer())


def all_emails_delivered_count(row: Row, now: datetime) -> int:
    return max(0, _sent(row, now) - all_emails_bounced_count(row, now))


def _all_emails_delivered_count_sql(col: ColumnLookup, now: datetime) -> Col:
    return _max0(_sent_sql(col, now) - _all_emails_bounced_count_sql(col, now))


def delivered_recipient_count(row: Row, now: datetime) -> int:
    bounced = (row.get("RecipientsHardBounced") or 0) + (row.get("RecipientsSoftBounced") or 0)
    return max(0, (row.get("RecipientSends") or 0) - bounced)


def _delivered_recipient_count_sql(col: ColumnLookup, now: datetime) -> Col:
    bounced = _zero_if_null(col, "RecipientsHardBounced") + _zero_if_null(
        col, "RecipientsSoftBounced"
    )
    return _max0(_zero_if_null(col, "RecipientSends") - bounced)


def delivered_recipient_rate(row: Row, now: datetime) -> float | None:
    return _percent(delivered_recipient_count(row, now), row.get("RecipientSends"))


def _delivered_recipient_rate_sql(col: ColumnLookup, now: datetime) -> Col:
    return _percent_sql(_delivered_recipient_count_sql(col, now), col("RecipientSends"))


def some_emails_delivered_count(row: Row, now: datetime) -> int:
    """Sends of which at least part was delivered: sent minus not delivered."""
    return max(0, _sent(row, now) - (row.get("AllEmailsNotDeliveredCount") or 0))


def _some_emails_delivered_count_sql(col: ColumnLookup, now: datetime) -> Col:
    return _max0(_sent_sql(col, now) - _zero_if_null(col, "AllEmailsNotDeliveredCount"))


def some_emails_delivered_rate(row: Row, now: datetime) -> float | None:
    return _percent(some_emails_delivered_count(row, now), _sent(row, now))


def _some_emails_delivered_rate_sql(col: ColumnLookup, now: datetime) -> Col:
    return _percent_sql(_some_emails_delivered_count_sql(col, now), _sent_sql(col, now))


#: formula name (as written in the declarations) -> its Python and SQL forms
FORMULAS: dict[str, Formula] = {
    "seconds_overdue": Formula(seconds_overdue, _seconds_overdue_sql),
    "is_action_taken": Formula(is_action_taken, _is_action_taken_sql),
    "is_orphan": Formula(is_orphan, _is_orphan_sql),
    "all_total_calls_count": Formula(all_total_calls_count, _all_total_calls_count_sql),
    "all_emails_bounced_count": Formula(all_emails_bounced_count, _all_emails_bounced_count_sql),
    "all_emails_delivered_count": Formula(
        all_emails_delivered_count, _all_emails_delivered_count_sql
    ),
    "all_emails_sent_count": Formula(all_emails_sent_count, _all_emails_sent_count_sql),
    "delivered_recipient_count": Formula(delivered_recipient_count, _delivered_recipient_count_sql),
    "delivered_recipient_rate": Formula(delivered_recipient_rate, _delivered_recipient_rate_sql),
    "some_emails_delivered_count": Formula(
        some_emails_delivered_count, _some_emails_delivered_count_sql
    ),
    "some_emails_delivered_rate": Formula(
        some_emails_delivered_rate, _some_emails_delivered_rate_sql
    ),
    **{name: _rate(num, den) for name, (num, den) in RATES.items()},
}


def evaluate(name: str, row: Row, now: datetime) -> Any:
    """The value of formula ``name`` for ``row`` at ``now`` (naive UTC)."""
    return FORMULAS[name].python(row, now)


def sql_expression(name: str, col: ColumnLookup, now: datetime) -> Col:
    """Formula ``name`` as a SQL expression over the columns ``col`` looks up.

    ``col(field)`` is the column of a field of the row's table and raises LookupError for a
    field without a column; ``now`` is the query's instant (naive UTC, or aware).
    """
    if name not in FORMULAS:
        raise ValueError(f"unknown formula: {name}")
    if now.tzinfo is not None:
        now = now.astimezone(UTC).replace(tzinfo=None)
    return FORMULAS[name].sql(col, now)
