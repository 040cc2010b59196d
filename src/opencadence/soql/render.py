"""Syntax tree -> canonical SOQL text (upper-case keywords, single spaces, no redundant
parentheses). ``parse(render(tree)) == tree`` for every tree the parser produces."""

from __future__ import annotations

from opencadence.soql import nodes
from opencadence.soql.literals import encode_string, format_datetime, format_time


def render(node: nodes.Query) -> str:
    """Render a query as canonical SOQL text."""
    return _query(node)


def _query(q: nodes.Query) -> str:
    parts = ["SELECT", ", ".join(_select_item(item) for item in q.select)]
    parts += ["FROM", ", ".join(_from_item(item) for item in q.from_items)]
    if q.using_scope is not None:
        parts += ["USING SCOPE", q.using_scope]
    if q.where is not None:
        parts += ["WHERE", _condition(q.where)]
    parts += [_with(clause) for clause in q.with_]
    if q.group_by is not None:
        parts += ["GROUP BY", _group_by(q.group_by)]
    if q.having is not None:
        parts += ["HAVING", _condition(q.having)]
    if q.order_by:
        parts += ["ORDER BY", ", ".join(_order_item(item) for item in q.order_by)]
    if q.limit is not None:
        parts += ["LIMIT", str(q.limit)]
    if q.offset is not None:
        parts += ["OFFSET", str(q.offset)]
    if q.bind:
        parts += ["BIND", _key_values(q.bind)]
    if q.for_:
        parts += ["FOR", ", ".join(q.for_)]
    if q.update:
        parts += ["UPDATE", ", ".join(q.update)]
    if q.options:
        parts += [f"SET OPTIONS ({_key_values(q.options)})"]
    return " ".join(parts)


def _aliased(text: str, alias: str | None) -> str:
    return text if alias is None else f"{text} {alias}"


def _select_item(item: nodes.SelectItem) -> str:
    if isinstance(item, nodes.FieldPath):
        return _aliased(item.dotted, item.alias)
    if isinstance(item, nodes.Function):
        return _aliased(_expr(item), item.alias)
    if isinstance(item, nodes.CountStar):
        return _aliased("COUNT()", item.alias)
    if isinstance(item, nodes.Fields):
        return f"FIELDS({item.kind})"
    if isinstance(item, nodes.TypeOf):
        return _typeof(item)
    return f"({_query(item.query)})"


def _typeof(item: nodes.TypeOf) -> str:
    parts = ["TYPEOF", item.field.dotted]
    for when in item.whens:
        parts += ["WHEN", when.type_name, "THEN", _paths(when.fields)]
    if item.else_fields:
        parts += ["ELSE", _paths(item.else_fields)]
    parts.append("END")
    return " ".join(parts)


def _paths(paths: tuple[nodes.FieldPath, ...]) -> str:
    return ", ".join(path.dotted for path in paths)


def _from_item(item: nodes.FromItem) -> str:
    return _aliased(item.path.dotted, item.alias)


def _expr(expr: nodes.Expr) -> str:
    if isinstance(expr, nodes.FieldPath):
        return expr.dotted
    if isinstance(expr, nodes.Function):
        return f"{expr.name}({', '.join(_expr(arg) for arg in expr.args)})"
    return value(expr)


def value(v: nodes.Value) -> str:
    """The SOQL literal text of a value node."""
    if isinstance(v, nodes.String):
        return encode_string(v.value)
    if isinstance(v, nodes.Number):
        return v.text
    if isinstance(v, nodes.Boolean):
        return "TRUE" if v.value else "FALSE"
    if isinstance(v, nodes.Null):
        return "NULL"
    if isinstance(v, nodes.Date):
        return v.value.isoformat()
    if isinstance(v, nodes.DateTime):
        return format_datetime(v.value)
    if isinstance(v, nodes.Time):
        return format_time(v.value)
    if isinstance(v, nodes.DateLiteral):
        return v.name if v.n is None else f"{v.name}:{v.n}"
    return f"{v.code}{v.amount.text}"


def _condition(cond: nodes.Condition) -> str:
    if isinstance(cond, nodes.And):
        return " AND ".join(_nested(term) for term in cond.terms)
    if isinstance(cond, nodes.Or):
        return " OR ".join(_nested(term) for term in cond.terms)
    if isinstance(cond, nodes.Not):
        return f"NOT {_nested(cond.term)}"
    operand = _expr(cond.operand)
    if isinstance(cond, nodes.Comparison):
        return f"{operand} {cond.op} {value(cond.value)}"
    if isinstance(cond, nodes.Like):
        return f"{operand} LIKE {encode_string(cond.pattern.value, like=True)}"
    if isinstance(cond, nodes.In):
        keyword = "NOT IN" if cond.negated else "IN"
        inner = _query(cond.query) if cond.query else ", ".join(value(v) for v in cond.values)
        return f"{operand} {keyword} ({inner})"
    keyword = "EXCLUDES" if cond.negated else "INCLUDES"
    return f"{operand} {keyword} ({', '.join(value(v) for v in cond.values)})"


def _nested(cond: nodes.Condition) -> str:
    # SOQL has no precedence: every compound operand of AND/OR/NOT needs parentheses.
    if isinstance(cond, (nodes.And, nodes.Or, nodes.Not)):
        return f"({_condition(cond)})"
    return _condition(cond)


def _with(clause: nodes.WithClause) -> str:
    if isinstance(clause, nodes.WithDataCategory):
        return "WITH DATA CATEGORY " + " AND ".join(_category(f) for f in clause.filters)
    if isinstance(clause, nodes.WithMode):
        return f"WITH {clause.name}"
    if isinstance(clause, nodes.WithFilter):
        return f"WITH {clause.name} = {value(clause.value)}"
    return f"WITH {clause.name} ({_key_values(clause.options)})"


def _category(f: nodes.CategoryFilter) -> str:
    cats = f.categories[0] if len(f.categories) == 1 else f"({', '.join(f.categories)})"
    return f"{f.group} {f.selector} {cats}"


def _key_values(items: tuple[nodes.KeyValue, ...]) -> str:
    return ", ".join(f"{item.key} = {value(item.value)}" for item in items)


def _group_by(g: nodes.GroupBy) -> str:
    items = ", ".join(_expr(item) for item in g.items)
    return items if g.kind == "PLAIN" else f"{g.kind}({items})"


def _order_item(item: nodes.OrderItem) -> str:
    text = _expr(item.expr)
    if item.descending:
        text += " DESC"
    if item.nulls is not None:
        text += f" NULLS {item.nulls}"
    return text
