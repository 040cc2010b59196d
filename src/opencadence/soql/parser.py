"""Recursive-descent SOQL parser: clauses, select items and conditions.

Literal values and function calls live in ``exprs.ExprParser``; this module holds the
query structure and the rules Salesforce enforces at parse time (clause order, no AND/OR
mixing, prefix-only NOT, aliases that are not reserved words).
"""

from __future__ import annotations

from typing import Any

from opencadence.soql import nodes
from opencadence.soql.exprs import (
    GROUP_FUNCS,
    HAVING_FUNCS,
    ORDER_FUNCS,
    SELECT_FUNCS,
    WHERE_FUNCS,
    ExprParser,
)
from opencadence.soql.tokens import (
    ALIAS_RESERVED,
    CATEGORY_SELECTORS,
    COMPARISON_OPS,
    FIELDS_KINDS,
    FUNCTION_NAMES,
    PATH_RESERVED,
    SCOPE_KEYWORDS,
    Token,
    TokenType,
)

_IDENT = TokenType.IDENT
_COMMA = TokenType.COMMA
_LPAREN = TokenType.LPAREN
_RPAREN = TokenType.RPAREN

# Query kinds: the outer query, a child-relationship subquery, a semi-join subquery.
TOP, CHILD, SEMI = "top", "child", "semi"


def _pos(tok: Token) -> nodes.Pos:
    return (tok.line, tok.column)


#: How deep parentheses may nest in WHERE/HAVING (and semi-join subqueries in them).
MAX_NESTING = 100


class Parser(ExprParser):
    """Parses one SOQL statement; use ``parse()``."""

    depth = 0

    def parse(self) -> nodes.Query:
        query = self._parse_query(TOP)
        if self._at_kw("ALL") and self._kw_at(1, "ROWS"):
            self._error(self._peek(), "ALL ROWS is only allowed in Apex code")
        self._expect(TokenType.EOF, "expecting end of query")
        return query

    # --- query ----------------------------------------------------------------------------

    def _parse_query(self, kind: str) -> nodes.Query:
        select_tok = self._expect_kw("SELECT")
        clause_pos = {"SELECT": _pos(select_tok)}
        select = self._parse_select_list()
        clause_pos["FROM"] = _pos(self._expect_kw("FROM"))
        from_items = self._parse_from(kind)
        fields: dict[str, Any] = {}  # Query keyword arguments, filled clause by clause
        if kind == TOP and self._clause(clause_pos, "USING"):
            self._expect_kw("SCOPE")
            fields["using_scope"] = self._parse_name("expecting a scope name")
        if self._clause(clause_pos, "WHERE"):
            fields["where"] = self._parse_condition("WHERE")
        fields["with_"] = self._parse_with_clauses(clause_pos)
        if kind == TOP and self._clause(clause_pos, "GROUP", "BY"):
            fields["group_by"] = self._parse_group_by()
            if self._clause(clause_pos, "HAVING"):
                fields["having"] = self._parse_condition("HAVING")
        if self._clause(clause_pos, "ORDER", "BY"):
            fields["order_by"] = self._parse_order_by()
        if self._clause(clause_pos, "LIMIT"):
            fields["limit"] = self._parse_count("LIMIT")
        if self._clause(clause_pos, "OFFSET"):
            fields["offset"] = self._parse_count("OFFSET")
        self._parse_tail(kind, clause_pos, fields)
        return nodes.Query(
            select, from_items, clause_pos=clause_pos, pos=_pos(select_tok), **fields
        )

    def _parse_tail(
        self, kind: str, clause_pos: dict[str, nodes.Pos], fields: dict[str, Any]
    ) -> None:
        """BIND, FOR VIEW/REFERENCE/UPDATE, UPDATE TRACKING/VIEWSTAT, SET OPTIONS."""
        if kind == TOP and self._at_kw("BIND") and self._peek(1).type is _IDENT:
            clause_pos["BIND"] = _pos(self._next())
            fields["bind"] = self._parse_key_values()
        if self._clause(clause_pos, "FOR"):
            fields["for_"] = self._parse_words("VIEW", "REFERENCE", "UPDATE")
        if self._at_kw("UPDATE") and self._kw_at(1, "TRACKING", "VIEWSTAT"):
            clause_pos["UPDATE"] = _pos(self._next())
            fields["update"] = self._parse_words("TRACKING", "VIEWSTAT")
        if kind == TOP and self._at_kw("SET") and self._kw_at(1, "OPTIONS"):
            clause_pos["SET OPTIONS"] = _pos(self._next())
            self._next()
            self._expect(_LPAREN)
            fields["options"] = self._parse_key_values()
            self._expect(_RPAREN)

    def _clause(
        self, clause_pos: dict[str, nodes.Pos], first: str, second: str | None = None
    ) -> bool:
        """Consume a clause keyword (and its second word, required once the first matched)."""
        if not self._at_kw(first):
            return False
        if first == "ORDER" and not self._kw_at(1, "BY"):
            return False  # ORDER is also a valid object/field name
        tok = self._next()
        if second is not None:
            self._expect_kw(second)
        clause_pos[first if second is None else f"{first} {second}"] = _pos(tok)
        return True

    def _parse_count(self, clause: str) -> int:
        tok = self._peek()
        if tok.type is not TokenType.NUMBER or not tok.text.isdigit():
            self._error(tok, f"{clause} requires a non-negative integer")
        self._next()
        # past 19 digits the binder's range check refuses it: don't convert 5,000 digits
        return int(tok.text) if len(tok.text) <= 19 else 10**19

    def _parse_words(self, *words: str) -> tuple[str, ...]:
        found = [self._expect_kw(*words).key]
        while self._accept(_COMMA):
            found.append(self._expect_kw(*words).key)
        return tuple(found)

    def _parse_key_values(self) -> tuple[nodes.KeyValue, ...]:
        items = [self._parse_key_value()]
        while self._accept(_COMMA):
            items.append(self._parse_key_value())
        return tuple(items)

    def _parse_key_value(self) -> nodes.KeyValue:
        tok = self._expect(_IDENT, "expecting a name")
        op = self._expect(TokenType.OP)
        if op.text != "=":
            self._error(op, "expecting '='")
        return nodes.KeyValue(tok.text, self._parse_value(), pos=_pos(tok))

    def _parse_name(self, detail: str) -> str:
        return self._expect(_IDENT, detail).text

    # --- SELECT ---------------------------------------------------------------------------

    def _parse_select_list(self) -> tuple[nodes.SelectItem, ...]:
        if self._at_kw("COUNT") and self._peek(1).type is _LPAREN and self._peek(2).type is _RPAREN:
            tok = self._next()
            self.i += 2
            # COUNT() is a select form of its own: the only item of the list.
            return (nodes.CountStar(self._parse_alias(), pos=_pos(tok)),)
        items = [self._parse_select_item()]
        while self._accept(_COMMA):
            items.append(self._parse_select_item())
        return tuple(items)

    def _parse_select_item(self) -> nodes.SelectItem:
        tok = self._peek()
        if tok.type is _LPAREN:
            self._next()
            query = self._parse_query(CHILD)
            self._expect(_RPAREN)
            return nodes.Subquery(query, pos=_pos(tok))
        if tok.type is _IDENT:
            ahead = self._peek(1)
            if tok.key == "TYPEOF" and ahead.type is _IDENT and ahead.key not in PATH_RESERVED:
                return self._parse_typeof()
            if ahead.type is _LPAREN and tok.key == "FIELDS":
                return self._parse_fields()
            if tok.key == "COUNT" and ahead.type is _LPAREN and self._peek(2).type is _RPAREN:
                self._error(tok, "COUNT() must be the only item in the select list")
            if ahead.type is _LPAREN and tok.key in FUNCTION_NAMES:
                func = self._parse_function(SELECT_FUNCS, "SELECT")
                return nodes.Function(func.name, func.args, self._parse_alias(), pos=func.pos)
        path = self._parse_path()
        return nodes.FieldPath(path.parts, self._parse_alias(), pos=path.pos)

    def _parse_alias(self) -> str | None:
        tok = self._peek()
        if tok.type is _IDENT and tok.key not in ALIAS_RESERVED:
            return self._next().text
        return None

    def _parse_fields(self) -> nodes.Fields:
        tok = self._next()
        self._expect(_LPAREN)
        kind = self._expect_kw(*sorted(FIELDS_KINDS)).key
        self._expect(_RPAREN)
        return nodes.Fields(kind, pos=_pos(tok))

    def _parse_typeof(self) -> nodes.TypeOf:
        tok = self._next()
        field = self._parse_path()
        whens = [self._parse_when()]
        while self._at_kw("WHEN"):
            whens.append(self._parse_when())
        else_fields: tuple[nodes.FieldPath, ...] = ()
        if self._accept_kw("ELSE"):
            else_fields = self._parse_path_list()
        self._expect_kw("END")
        return nodes.TypeOf(field, tuple(whens), else_fields, pos=_pos(tok))

    def _parse_when(self) -> nodes.TypeOfWhen:
        tok = self._expect_kw("WHEN")
        type_name = self._parse_name("expecting an object name")
        self._expect_kw("THEN")
        return nodes.TypeOfWhen(type_name, self._parse_path_list(), pos=_pos(tok))

    def _parse_path_list(self) -> tuple[nodes.FieldPath, ...]:
        paths = [self._parse_path()]
        while self._accept(_COMMA):
            paths.append(self._parse_path())
        return tuple(paths)

    # --- FROM -----------------------------------------------------------------------------

    def _parse_from(self, kind: str) -> tuple[nodes.FromItem, ...]:
        if kind == TOP:
            tok = self._expect(_IDENT, "expecting an object name")
            if tok.key in PATH_RESERVED:
                self._error(tok, "expecting an object name")
            first = nodes.FieldPath((tok.text,), pos=_pos(tok))
        else:
            first = self._parse_path()
        items = [nodes.FromItem(first, self._parse_from_alias(), pos=first.pos)]
        # Extra items are the legacy parent-alias notation: FROM Contact c, c.Account a.
        while kind == TOP and self._accept(_COMMA):
            path = self._parse_path()
            items.append(nodes.FromItem(path, self._parse_from_alias(), pos=path.pos))
        return tuple(items)

    def _parse_from_alias(self) -> str | None:
        tok = self._peek()
        if tok.type is not _IDENT or tok.key in ALIAS_RESERVED:
            return None
        ahead = self._peek(1)
        if (
            (tok.key == "ORDER" and ahead.key == "BY" and ahead.type is _IDENT)
            or (tok.key == "OFFSET" and ahead.type is not TokenType.EOF)
            or (tok.key == "UPDATE" and self._kw_at(1, "TRACKING", "VIEWSTAT"))
            or (tok.key in ("BIND", "SET") and ahead.type is _IDENT)
            or (tok.key == "ALL" and ahead.key == "ROWS")
        ):
            return None  # a clause, not an alias
        return self._next().text

    # --- WITH -----------------------------------------------------------------------------

    def _parse_with_clauses(self, clause_pos: dict[str, nodes.Pos]) -> tuple[nodes.WithClause, ...]:
        clauses: list[nodes.WithClause] = []
        while self._at_kw("WITH"):
            clause_pos.setdefault("WITH", _pos(self._next()))
            clauses.append(self._parse_with())
        return tuple(clauses)

    def _parse_with(self) -> nodes.WithClause:
        tok = self._expect(_IDENT, "expecting DATA CATEGORY, a filter or a mode")
        if tok.key == "DATA" and self._at_kw("CATEGORY"):
            self._next()
            filters = [self._parse_category_filter()]
            while self._accept_kw("AND"):
                filters.append(self._parse_category_filter())
            return nodes.WithDataCategory(tuple(filters), pos=_pos(tok))
        if tok.key in SCOPE_KEYWORDS:
            return nodes.WithMode(tok.key, pos=_pos(tok))
        if self._accept(_LPAREN):
            options = self._parse_key_values()
            self._expect(_RPAREN)
            return nodes.WithContext(tok.text, options, pos=_pos(tok))
        op = self._peek()
        if op.type is not TokenType.OP or op.text != "=":
            self._error(op, "expecting '=' or '('")
        self._next()
        return nodes.WithFilter(tok.text, self._parse_value(), pos=_pos(tok))

    def _parse_category_filter(self) -> nodes.CategoryFilter:
        tok = self._expect(_IDENT, "expecting a data category group")
        selector = self._expect_kw(*sorted(CATEGORY_SELECTORS)).key
        if self._accept(_LPAREN):
            names = [self._parse_name("expecting a category")]
            while self._accept(_COMMA):
                names.append(self._parse_name("expecting a category"))
            self._expect(_RPAREN)
        else:
            names = [self._parse_name("expecting a category")]
        return nodes.CategoryFilter(tok.text, selector, tuple(names), pos=_pos(tok))

    # --- GROUP BY / ORDER BY ----------------------------------------------------------------

    def _parse_group_by(self) -> nodes.GroupBy:
        tok = self._peek()
        if self._at_kw("ROLLUP", "CUBE") and self._peek(1).type is _LPAREN:
            self.i += 2
            items = self._parse_group_items()
            self._expect(_RPAREN)
            return nodes.GroupBy(tok.key, items, pos=_pos(tok))
        return nodes.GroupBy("PLAIN", self._parse_group_items(), pos=_pos(tok))

    def _parse_group_items(self) -> tuple[nodes.FieldPath | nodes.Function, ...]:
        items = [self._parse_operand(GROUP_FUNCS, "GROUP BY")]
        while self._accept(_COMMA):
            items.append(self._parse_operand(GROUP_FUNCS, "GROUP BY"))
        return tuple(items)

    def _parse_order_by(self) -> tuple[nodes.OrderItem, ...]:
        items = [self._parse_order_item()]
        while self._accept(_COMMA):
            items.append(self._parse_order_item())
        return tuple(items)

    def _parse_order_item(self) -> nodes.OrderItem:
        tok = self._peek()
        expr = self._parse_operand(ORDER_FUNCS, "ORDER BY")
        direction = self._accept_kw("ASC", "DESC")
        nulls = None
        if self._accept_kw("NULLS"):
            nulls = self._expect_kw("FIRST", "LAST").key
        descending = direction is not None and direction.key == "DESC"
        return nodes.OrderItem(expr, descending, nulls, pos=_pos(tok))

    # --- conditions -----------------------------------------------------------------------

    def _parse_condition(self, clause: str) -> nodes.Condition:
        """``NOT term`` | ``term {AND term}`` | ``term {OR term}``: no precedence in SOQL."""
        not_tok = self._accept_kw("NOT")
        if not_tok is not None:
            term = nodes.Not(self._parse_term(clause), pos=_pos(not_tok))
            if self._at_kw("AND", "OR"):
                self._error(self._peek(), "a NOT condition must be in parentheses to be combined")
            return term
        first = self._parse_term(clause)
        joiner = self._accept_kw("AND", "OR")
        if joiner is None:
            return first
        terms = [first, self._parse_term(clause)]
        while self._accept_kw(joiner.key):
            terms.append(self._parse_term(clause))
        if self._at_kw("AND", "OR"):
            self._error(self._peek(), "AND and OR cannot be mixed without parentheses")
        if joiner.key == "AND":
            return nodes.And(tuple(terms), pos=first.pos)
        return nodes.Or(tuple(terms), pos=first.pos)

    def _parse_term(self, clause: str) -> nodes.Condition:
        lparen = self._peek()
        if self._accept(_LPAREN):
            self.depth += 1
            if self.depth > MAX_NESTING:  # recursion has a limit: refuse well before it
                self._error(lparen, f"conditions nest more than {MAX_NESTING} levels deep")
            cond = self._parse_condition(clause)
            self._expect(_RPAREN, "expecting ')'")
            self.depth -= 1
            return cond
        if self._at_kw("NOT"):
            self._error(self._peek(), "NOT may only start a condition; use AND (NOT ...)")
        return self._parse_predicate(clause)

    def _parse_predicate(self, clause: str) -> nodes.Condition:
        funcs = WHERE_FUNCS if clause == "WHERE" else HAVING_FUNCS
        operand = self._parse_operand(funcs, clause)
        tok = self._peek()
        if tok.type is TokenType.OP and tok.text in COMPARISON_OPS:
            self._next()
            return nodes.Comparison(operand, tok.text, self._parse_value(), pos=operand.pos)
        if tok.type is not _IDENT:
            self._error(tok, "expecting an operator")
        if tok.key == "LIKE":
            self._next()
            return nodes.Like(operand, self._parse_string(like=True), pos=operand.pos)
        if tok.key == "IN" or (tok.key == "NOT" and self._kw_at(1, "IN")):
            self.i += 1 if tok.key == "IN" else 2
            return self._parse_in(operand, negated=tok.key == "NOT")
        if tok.key in ("INCLUDES", "EXCLUDES"):
            self._next()
            self._expect(_LPAREN)
            values = [self._parse_string()]
            while self._accept(_COMMA):
                values.append(self._parse_string())
            self._expect(_RPAREN)
            return nodes.Includes(operand, tuple(values), tok.key == "EXCLUDES", pos=operand.pos)
        self._error(tok, "expecting an operator")

    def _parse_in(self, operand: nodes.FieldPath | nodes.Function, negated: bool) -> nodes.In:
        lparen = self._expect(_LPAREN)
        if self._at_kw("SELECT"):
            self.depth += 1
            if self.depth > MAX_NESTING:
                self._error(lparen, f"conditions nest more than {MAX_NESTING} levels deep")
            query = self._parse_query(SEMI)
            self._expect(_RPAREN)
            self.depth -= 1
            return nodes.In(operand, query=query, negated=negated, pos=operand.pos)
        values = [self._parse_value()]
        while self._accept(_COMMA):
            values.append(self._parse_value())
        self._expect(_RPAREN, "expecting ',' or ')'")
        return nodes.In(operand, tuple(values), negated=negated, pos=operand.pos)


def parse(text: str) -> nodes.Query:
    """Parse one SOQL statement (see ``opencadence.soql.parse``)."""
    return Parser(text).parse()
