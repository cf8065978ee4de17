"""Querysets built once per process and database, then run again with new values.

Django compiles a queryset's SQL anew each time it runs. The write path
(``apply_subscription``: every webhook, inline or in a worker's batch) reads two
rows per event under their locks, the organization by its customer and the
subscription by its id, and building those two statements cost more than
running them: 1,620 and 2,817 Python calls, 0.6 and 1.0 ms, where running the
SQL takes 0.09 ms (measured on SQLite; the issue 18 profile in
``bench/PROFILE.md`` shows the same on PostgreSQL). A ``CompiledQuery`` builds
its queryset once with placeholder values, keeps the SQL, where each value
goes and the ORM's converters, and turns the row into a model instance as the
ORM does (``Model.from_db``). ``tests/test_compiled_queries.py`` compares SQL
and instances with the ORM's. Where psycopg may prepare statements
(``preparing_cursor``), PostgreSQL also stops planning them.

The write path's statements are kept the same way: ``insert`` (a delivery's
row) and ``save_columns`` (a subscription's changed columns) build an INSERT or
UPDATE once per model and columns with Django's compiler and make only the
values for each row, with the same field methods ``Model.save`` uses. They
skip ``Model.save``'s own overhead, so a model whose ``pre_save`` or
``post_save`` has a receiver is saved by the ORM, receivers and all.

An inline webhook's last two writes, the subscription's UPDATE and the
delivery's INSERT, go to PostgreSQL as one statement (``holding_update``): a
round trip is most of what a statement costs there, and they are two of the
webhook's five (BEGIN, the locked read, the two writes, COMMIT).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, router
from django.db.models import Field, Model, QuerySet
from django.db.models.signals import post_save, pre_save
from django.db.models.sql import InsertQuery, UpdateQuery
from django.db.transaction import TransactionManagementError
from django.dispatch import receiver

_compiled_queries: list[CompiledQuery] = []
# The writes' statements: INSERTs by (model, database, columns, returning), UPDATEs by (model, database,
# columns, which are NULL); the compiler an INSERT's values are made with.
_inserts: dict[tuple, tuple[str, Any]] = {}
_updates: dict[tuple, tuple[str, tuple[bool, ...]]] = {}  # the SQL, and which columns' values it binds
NO_ROW_UPDATED = "Save with update_fields did not affect any rows."  # the ORM's words for an UPDATE of a row gone


class _Value(int):
    """Where the SQL takes the n-th value of ``first()``."""


@dataclass(frozen=True)
class _Part:
    """One model's columns in the row: the queryset's own, or one it follows with ``select_related``."""

    model: type[Model]
    names: tuple[str, ...]
    start: int
    stop: int
    pk: int  # the primary key's place in names: None there is a related row that is not there
    link: Callable[[Model, Model | None], None] | None = None  # caches the related instance on the main one
    back: Callable[[Model, Model], None] | None = None  # and, for a one-to-one relation, the other way

    @classmethod
    def of(cls, compiler: Any, klass_info: dict) -> _Part:
        fields = klass_info["select_fields"]
        names = tuple(column.target.attname for column, _, _ in compiler.select[fields[0] : fields[-1] + 1])
        model = klass_info["model"]
        link, back = klass_info.get("local_setter"), klass_info.get("remote_setter")
        return cls(model, names, fields[0], fields[-1] + 1, names.index(model._meta.pk.attname), link, back)

    def instance(self, using: str, row: tuple) -> Model | None:
        values = row[self.start : self.stop]
        return None if values[self.pk] is None else self.model.from_db(using, self.names, values)


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple[Any, ...]  # constants, and a _Value where a value goes
    main: _Part
    related: tuple[_Part, ...]
    compiler: Any
    converters: dict[int, Any]
    locks: bool


class CompiledQuery:
    """``build(*values).first()``, with ``build``'s SQL made once per database (module docstring).

    ``build`` takes string values and must pass each to the SQL unchanged, as a
    comparison (``=``) does; anything else fails at the first call. Values that
    are not strings (None becomes ``IS NULL`` in the ORM) go through the ORM.
    """

    def __init__(self, build: Callable[..., QuerySet]) -> None:
        self._build = build
        self._routing: tuple[type[Model], bool] | None = None  # the model, and whether it is read for a write
        self._by_database: dict[str, _Compiled] = {}
        _compiled_queries.append(self)

    def first(self, *values: Any) -> Model | None:
        if not all(isinstance(value, str) for value in values):
            return self._build(*values).first()
        model, for_write = self._routing or self._route(len(values))
        using = router.db_for_write(model) if for_write else router.db_for_read(model)  # as QuerySet.db
        compiled = self._by_database.get(using) or self._compile(using, len(values))
        connection = connections[using]
        if compiled.locks and connection.get_autocommit():
            raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")
        params = [values[param] if isinstance(param, _Value) else param for param in compiled.params]
        with preparing_cursor(connection) as cursor:
            cursor.execute(compiled.sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        if compiled.converters:
            row = next(compiled.compiler.apply_converters([row], compiled.converters))
        found = compiled.main.instance(using, row)
        for part in compiled.related:  # as the ORM's select_related fills them in
            related = part.instance(using, row)
            part.link(found, related)
            if related is not None:
                part.back(related, found)
        return found

    def _route(self, arity: int) -> tuple[type[Model], bool]:
        queryset = self._build(*_marks(arity))
        self._routing = queryset.model, bool(queryset.query.select_for_update)  # select_for_update reads for a write
        return self._routing

    def _compile(self, using: str, arity: int) -> _Compiled:
        marks = _marks(arity)
        queryset = self._build(*marks).using(using)
        queryset = (queryset if queryset.ordered else queryset.order_by("pk"))[:1]  # as QuerySet.first()
        compiler = queryset.query.get_compiler(using)
        sql, params = compiler.as_sql()
        placed = tuple(_Value(marks.index(param)) if param in marks else param for param in params)
        if {int(param) for param in placed if isinstance(param, _Value)} != set(range(arity)):
            raise ImproperlyConfigured(f"{self._build!r} does not pass each value to the SQL unchanged")
        related = compiler.klass_info.get("related_klass_infos", [])
        if any(info.get("related_klass_infos") for info in related):
            raise ImproperlyConfigured(f"{self._build!r} follows relations more than one deep")
        compiled = _Compiled(
            sql=sql,
            params=placed,
            main=_Part.of(compiler, compiler.klass_info),
            related=tuple(_Part.of(compiler, info) for info in related),
            compiler=compiler,
            converters=compiler.get_converters([expression for expression, _, _ in compiler.select]),
            locks=bool(queryset.query.select_for_update and compiler.connection.features.has_select_for_update),
        )
        self._by_database[using] = compiled
        return compiled


def insert_statement(row: Model, using: str, *, returning: bool) -> tuple[str, list[Any]]:
    """The INSERT of ``row``, as Django makes it (defaults, ``auto_now``, value conversion), and its values.

    Its SQL is built once per model, database and columns; later rows only have their values made, by the
    same compiler methods. Returns the new primary key with ``returning``.
    """
    meta = row._meta
    fields = tuple(
        field
        for field in meta.local_concrete_fields
        if not field.generated and (field is not meta.auto_field or row.pk is not None)
    )
    key = (type(row), using, fields, returning)
    if key in _inserts and not _has_expression(row, fields):
        sql, compiler = _inserts[key]
        return sql, [compiler.prepare_value(field, compiler.pre_save_val(field, row)) for field in fields]
    query = InsertQuery(type(row))
    query.insert_values(fields, [row])
    compiler = query.get_compiler(using=using)
    compiler.returning_fields = [meta.pk] if returning else None
    [(sql, params)] = compiler.as_sql()
    if not _has_expression(row, fields):  # an expression's SQL is its own: that statement is not kept
        _inserts[key] = sql, compiler
    return sql, list(params)


def insert(row: Model) -> None:
    """``row.save(force_insert=True)`` for a new row, its INSERT built once (``insert_statement``).

    Where the model's save signals have a receiver, the ORM's save, so it runs.
    """
    model = type(row)
    if _heard(model):
        row.save(force_insert=True)
        return
    row._prepare_related_fields_for_save(operation_name="save")
    using = router.db_for_write(model, instance=row)
    connection = connections[using]
    returning = row._meta.auto_field is not None and row.pk is None
    sql, params = insert_statement(row, using, returning=returning)
    held = getattr(connection, "orgbilling_held", None)
    joined = held.pop() if held else None  # the UPDATE waiting for this INSERT (holding_update)
    if joined is not None:  # both in one statement, the count of rows updated returned too
        also = ", " if returning else " RETURNING "
        sql = f"WITH held AS ({joined[0]} RETURNING 1) {sql}{also}(SELECT count(*) FROM held)"
        params = [*joined[1], *params]
    with preparing_cursor(connection) as cursor:
        cursor.execute(sql, params)
        result = cursor.fetchone() if returning or joined else None
    if joined is not None and result[-1] < 1:
        raise DatabaseError(NO_ROW_UPDATED)
    if returning:
        row.pk = result[0]
    row._state.adding, row._state.db = False, using


def save_columns(row: Model, names: list[str]) -> None:
    """``row.save(update_fields=names)``, its UPDATE built once per model, database, columns and NULLs.

    The values are Django's (``pre_save``, ``get_db_prep_save``); where the model's save signals have a
    receiver, or a value is an expression or a field places its own, the ORM's save (which also refuses a name
    that is not a column of the model).
    """
    model, meta = type(row), row._meta
    fields = [field for field in meta.local_concrete_fields if {field.name, field.attname} & set(names)]  # ORM's order
    values = [field.pre_save(row, False) for field in fields]
    if (
        _heard(model)
        or len(fields) != len(set(names))
        or any(
            _places_its_own(field) or hasattr(value, "resolve_expression") or isinstance(value, Model)
            for field, value in zip(fields, values, strict=True)
        )
    ):
        row.save(update_fields=names)
        return
    using = router.db_for_write(model, instance=row)
    connection = connections[using]
    prepared = [field.get_db_prep_save(value, connection) for field, value in zip(fields, values, strict=True)]
    key = (model, using, tuple(fields), tuple(value is None for value in prepared))
    if key not in _updates:
        query = UpdateQuery(model)
        query.add_update_fields([(field, None, value) for field, value in zip(fields, values, strict=True)])
        query.add_filter("pk", row.pk)
        sql = query.get_compiler(using=using).as_sql()[0]
        # Django 6 binds a NULL, 5.2 writes it into the statement: which values it binds is read off the SQL.
        qn = connection.ops.quote_name
        bound = tuple(f"{qn(field.column)} = NULL" not in sql for field in fields)
        if sql.count("%s") != sum(bound) + 1:  # not one value a column and the key: kept by nobody
            row.save(update_fields=names)
            return
        _updates[key] = sql, bound
    sql, bound = _updates[key]
    pk = meta.pk.get_db_prep_value(row.pk, connection)
    params = [value for value, binds in zip(prepared, bound, strict=True) if binds] + [pk]
    held = getattr(connection, "orgbilling_held", None)
    if held is None:
        _update(connection, sql, params)
    else:
        _run_held(connection)  # one held at a time, in the order they were made
        held.append((sql, params))
    row._state.adding, row._state.db = False, using


def _update(connection: Any, sql: str, params: list[Any]) -> None:
    with preparing_cursor(connection) as cursor:
        cursor.execute(sql, params)
        if cursor.rowcount < 1:
            raise DatabaseError(NO_ROW_UPDATED)  # as the ORM's save


@contextmanager
def holding_update(using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Within it, on PostgreSQL, an UPDATE of ``save_columns`` waits for the next ``insert``, which runs both in
    one statement (a data-modifying ``WITH``): one round trip instead of two.

    Any other statement runs the held UPDATE first, and so does the block's end: every statement, and the
    commit, sees the writes made before it, in their order. Used directly inside the ``atomic`` block it
    belongs to: when that transaction is to be rolled back, or an exception leaves the block, the UPDATE is
    dropped with it. Elsewhere, a plain block: each write runs when it is made.
    """
    connection = connections[using]
    if connection.vendor != "postgresql" or hasattr(connection, "orgbilling_held"):
        yield
        return
    connection.orgbilling_held = []
    try:
        with connection.execute_wrapper(_run_held_first):
            yield
            if not connection.needs_rollback:
                _run_held(connection)
    finally:
        del connection.orgbilling_held


def _run_held_first(execute: Callable, sql: str, params: Any, many: bool, context: dict) -> Any:
    _run_held(context["connection"])
    return execute(sql, params, many, context)


def _run_held(connection: Any) -> None:
    held = connection.orgbilling_held
    if held:
        _update(connection, *held.pop())


def _heard(model: type[Model]) -> bool:
    return pre_save.has_listeners(model) or post_save.has_listeners(model)


def _places_its_own(field: Field) -> bool:
    """A field that writes its own SQL for a value (Django 5.2's ``get_placeholder``, 6's ``get_placeholder_sql``)."""
    return hasattr(field, "get_placeholder") or hasattr(field, "get_placeholder_sql")


def _has_expression(row: Model, fields: tuple[Field, ...]) -> bool:
    return any(hasattr(getattr(row, field.attname), "resolve_expression") for field in fields)


def preparing_cursor(connection: Any) -> Any:
    """Django's cursor, or a server-binding one where psycopg may prepare statements.

    On PostgreSQL, where the project lets psycopg prepare statements (``"prepare_threshold"`` in the
    database's ``OPTIONS``), a statement run again and again on a server-binding cursor is prepared once per
    connection and no longer planned each time. Django's own cursor binds on the client, so it never is.
    Unset, as Django leaves it for connection poolers in transaction mode, this is Django's cursor.
    """
    if connection.vendor != "postgresql" or connection.settings_dict["OPTIONS"].get("prepare_threshold") is None:
        return connection.cursor()
    import psycopg

    connection.ensure_connection()
    connection.validate_thread_sharing()
    raw = psycopg.Cursor(connection.connection)
    return connection.make_debug_cursor(raw) if connection.queries_logged else connection.make_cursor(raw)


def _marks(arity: int) -> list[str]:
    return [f"\x00orgbilling-value-{number}\x00" for number in range(arity)]


@receiver(setting_changed)
def _forget(*, setting: str, **kwargs: Any) -> None:
    if setting == "DATABASES":
        for query in _compiled_queries:
            query._by_database.clear()
        _inserts.clear()
        _updates.clear()
