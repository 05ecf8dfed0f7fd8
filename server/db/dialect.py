"""The SQL that differs between SQLite and PostgreSQL, in one place; everything else is portable.

insert_unless_present   INSERT … ON CONFLICT DO NOTHING, built for the engine that runs it
rows_unless_present     the same for a batch of rows: one INSERT … SELECT FROM unnest(arrays)
                        on PostgreSQL (one round trip), executemany on SQLite
key_in / update_by_key  a batch's rows read and updated by primary key: one statement over
                        arrays on PostgreSQL (one round trip), IN and executemany on SQLite;
                        the arrays go as text literals (`array_literal`)
append_only_triggers    the audit log's triggers refusing UPDATE and DELETE (the migrations')
storable_text           what text both engines can store (PostgreSQL's holds no NUL)
migration_lock          one migrator at a time (replicas starting together)
notify / Listener       PostgreSQL's LISTEN/NOTIFY, which carries long-poll wake-ups between
                        server processes (server/notify.py); SQLite has one process, nothing to do
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import threading
from collections.abc import Callable, Iterator, Sequence

from sqlalchemy import (
    ColumnElement,
    String,
    Table,
    Text,
    bindparam,
    cast,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql.dml import Insert
from sqlalchemy.types import NullType

from server.db.base import UTCDateTime

log = logging.getLogger(__name__)

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
DIALECTS = (SQLITE, POSTGRESQL)

# Any constant will do: it only has to be the same in every process migrating this database.
MIGRATION_LOCK_ID = 0x6261746D  # "batm"


class InsertUnlessPresent(Insert):
    """An INSERT that does nothing (rowcount 0) when a row with the same key exists; compiled
    by whichever engine executes it, so that callers need not know which one that is."""

    inherit_cache = False  # compiled per dialect below; not worth a cache key of its own

    def __init__(self, table, key: Sequence[str]) -> None:
        super().__init__(table)
        self.unless_key = list(key)


@compiles(InsertUnlessPresent)
def _compile_insert_unless_present(element: InsertUnlessPresent, compiler, **kw) -> str:
    name = compiler.dialect.name
    if name not in DIALECTS:
        raise NotImplementedError(f"insert_unless_present: no statement for {name}")
    module = sqlite if name == SQLITE else postgresql
    statement = module.insert(element.table)
    statement._values = element._values  # the same values, a dialect's own INSERT around them
    statement = statement.on_conflict_do_nothing(index_elements=element.unless_key)
    return compiler.visit_insert(statement, **kw)


def insert_unless_present(table: type[DeclarativeBase], key: Sequence[str], /,
                          **values) -> Insert:
    """INSERT that does nothing when a row with the same `key` columns exists (rowcount 0)."""
    # SQLAlchemy reports an INSERT's rowcount only when asked to (psycopg would say -1).
    return (InsertUnlessPresent(table.__table__, key).values(**values)
            .execution_options(preserve_rowcount=True))


def key_in(dialect: str, column, values: Sequence) -> ColumnElement[bool]:
    """`column IN values` for a batch. PostgreSQL gets one array parameter, not a parameter per
    value (which SQLAlchemy expands for every execution), as `IN (SELECT unnest(array))`: a
    semi-join, planned as index lookups or one hash. Not `= ANY(array)`: a prepared statement's
    generic plan cannot hash a parameter's array, so where the planner chose a sequential scan
    (a table still small, or not yet analyzed) every row was compared with every value — a
    batch of 500 against 20,000 terminals took 200 ms."""
    if dialect == POSTGRESQL:
        array = _array(bindparam(None, array_literal(values), type_=Text), column)
        return column.in_(select(func.unnest(array)).scalar_subquery())
    return column.in_(values)


_updates_by_key: dict[tuple, object] = {}  # one statement per shape: the compiled cache's hits


def update_by_key(connection: Connection, table: Table, key: str, rows: list[dict]) -> None:
    """UPDATE `table` SET each row's other columns WHERE `key` = row[key]; every row has the
    same columns. PostgreSQL: one UPDATE … FROM unnest(arrays), one statement and one round
    trip for the batch, where executemany sends a statement per row through the driver;
    SQLite (in the process: no round trips to save): executemany."""
    if not rows:
        return
    names = tuple(rows[0])
    others = [name for name in names if name != key]
    shape = (connection.dialect.name, table.name, key, names)
    statement = _updates_by_key.get(shape)
    if connection.dialect.name == POSTGRESQL:
        if statement is None:
            arrays = [_array(bindparam(f"a{i}", type_=Text), table.c[name])
                      for i, name in enumerate(names)]
            values = func.unnest(*arrays).table_valued(*names).render_derived(name="v")
            statement = (update(table).values({name: values.c[name] for name in others})
                         .where(table.c[key] == values.c[key]))
            _updates_by_key[shape] = statement
        connection.execute(statement, {f"a{i}": array_literal([row[name] for row in rows])
                                       for i, name in enumerate(names)})
        return
    driver = _updates_by_key.get(shape)
    if driver is None:
        # "k_…": the WHERE's own bind name (a column's name is its SET bind name)
        statement = (update(table).where(table.c[key] == bindparam(f"k_{key}"))
                     .values({name: bindparam(name) for name in others}))
        compiled = statement.compile(dialect=connection.dialect)
        order = [key if name == f"k_{key}" else name for name in compiled.positiontup]
        processors = [table.c[name].type.dialect_impl(connection.dialect)
                      .bind_processor(connection.dialect) for name in order]
        driver = _updates_by_key[shape] = (compiled.string, order, processors)
    sql, order, processors = driver
    # The driver's own executemany with values converted once per distinct value (a batch's
    # rows share their received_at): SQLAlchemy's per-row parameter handling cost more CPU
    # than SQLite's work (bench/ingest_cost.py).
    columns = []
    for name, process in zip(order, processors, strict=True):
        values = [row[name] for row in rows]
        if process is not None:
            converted: dict = {}
            values = [converted[v] if v in converted else converted.setdefault(v, process(v))
                      for v in values]
        columns.append(values)
    connection.exec_driver_sql(sql, list(zip(*columns, strict=True)))


_inserts_unless_present: dict[tuple, object] = {}


def rows_unless_present(connection: Connection, table: Table, key: str,
                        rows: list[dict]) -> set:
    """INSERT the rows whose `key` matches no stored row, leaving the others as they are; the
    keys it inserted. Every row has the same columns and no two rows the same key. The keys
    come back from the INSERT itself (RETURNING): a lookup afterwards would be a second
    statement, and PostgreSQL plans a prepared `key = ANY($1)` once for all, so a plan made
    while the table was small (a sequential scan) may stay until the next ANALYZE."""
    if not rows:
        return set()
    names = tuple(rows[0])
    dialect = connection.dialect.name
    shape = (dialect, table.name, key, names)
    statement = _inserts_unless_present.get(shape)
    if dialect == POSTGRESQL:
        if statement is None:
            arrays = [_array(bindparam(f"a{i}", type_=Text), table.c[name])
                      for i, name in enumerate(names)]
            values = func.unnest(*arrays).table_valued(*names).render_derived(name="v")
            statement = (postgresql.insert(table)
                         .from_select(names, select(*(values.c[name] for name in names)))
                         .on_conflict_do_nothing(index_elements=[key])
                         .returning(table.c[key]))
            _inserts_unless_present[shape] = statement
        result = connection.execute(statement, {f"a{i}": array_literal([row[name] for row in rows])
                                                for i, name in enumerate(names)})
        return set(result.scalars())
    if dialect != SQLITE:
        raise NotImplementedError(f"rows_unless_present: no statement for {dialect}")
    if statement is None:
        statement = _inserts_unless_present[shape] = (
            sqlite.insert(table).on_conflict_do_nothing(index_elements=[key])
            .returning(table.c[key]))
    return set(connection.execute(statement, rows).scalars())


def array_literal(values: Sequence) -> str:
    """PostgreSQL's text form of a one-dimensional array of these values (None is NULL).

    psycopg dumps a list parameter element by element in Python (a dumper looked up and a
    regular expression run for each): at a fleet's rate that was 17 % of a server replica's
    busy CPU (py-spy in a 50,000-terminal run), for the literal this builds with a few string
    operations per value. PostgreSQL parses the same text either way. A string is quoted with
    its backslashes and double quotes escaped (NUL, which text cannot hold, is refused before:
    `storable_text`); a datetime is a UTCDateTime's value (the one timestamp type, server/db/
    base.py); numbers are written as Python writes them, which PostgreSQL reads (payloads
    refuse NaN and infinities)."""
    parts = []
    for value in values:
        if value is None:
            parts.append("NULL")
        elif isinstance(value, str):
            parts.append('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"')
        elif value is True or value is False:
            parts.append("t" if value else "f")
        elif isinstance(value, int | float):
            parts.append(repr(value))
        elif isinstance(value, datetime.datetime):
            parts.append('"' + _UTC.process_bind_param(value, None).isoformat() + '"')
        else:
            raise TypeError(f"no array literal for a {type(value).__name__}")
    return "{" + ",".join(parts) + "}"


_UTC = UTCDateTime()  # converts a datetime as the timestamp columns store it


def _array(parameter, column):
    """A text parameter holding `array_literal(…)`, cast to an array of the column's type."""
    return cast(parameter, postgresql.ARRAY(_type_of(column)))


def _type_of(column):
    """A column's type; a foreign key declared without one has its target's."""
    if isinstance(column.type, NullType) and column.foreign_keys:
        return next(iter(column.foreign_keys)).column.type
    return String() if isinstance(column.type, NullType) else column.type


def storable_text(value: str) -> bool:
    """Whether both engines can store `value`: PostgreSQL's text holds no NUL character (psycopg
    refuses it with DataError, a 500), so input with one is refused on SQLite too, where it is
    read — one behaviour on both (found by tests/test_fuzz.py on PostgreSQL)."""
    return "\x00" not in value


def append_only_triggers(table: str, dialect: str) -> list[str]:
    """DDL making `table` refuse UPDATE and DELETE, even from the server's own code."""
    message = f"the {table.replace('_', ' ')} is append-only"
    if dialect == SQLITE:
        return [
            f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
            for verb in ("UPDATE", "DELETE")
        ]
    if dialect == POSTGRESQL:
        return [
            f"CREATE FUNCTION {table}_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{message}'; END $$",
            f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_refuse()",
        ]
    raise NotImplementedError(f"append-only triggers: no DDL for {dialect}")


def drop_append_only_triggers(table: str, dialect: str) -> list[str]:
    if dialect == SQLITE:
        return [f"DROP TRIGGER {table}_no_{verb}" for verb in ("update", "delete")]
    return [f"DROP TRIGGER {table}_no_change ON {table}", f"DROP FUNCTION {table}_refuse()"]


@contextlib.contextmanager
def migration_lock(connection: Connection) -> Iterator[None]:
    """Held while migrating, so that replicas starting at once migrate one after the other.

    PostgreSQL: a transaction-level advisory lock (released at commit). SQLite: the migration's
    own write transaction already excludes every other writer."""
    if connection.dialect.name == POSTGRESQL:
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
    yield


def crosses_processes(engine: Engine) -> bool:
    """Whether several server processes may share this database (and so need notify/listen)."""
    return engine.dialect.name == POSTGRESQL


def notify(connection: Connection, channel: str, payload: str) -> None:
    """Send `payload` to every process listening on `channel` (delivered at commit)."""
    connection.execute(text("SELECT pg_notify(:channel, :payload)"),
                       {"channel": channel, "payload": payload})


class Listener:
    """A thread holding one PostgreSQL connection that LISTENs on `channel` and hands every
    payload to `deliver`; it reconnects after a lost connection (a wake-up lost meanwhile only
    delays a long-poll until its timeout: every poll reads the database after waking).
    `connected` is called each time LISTEN has taken effect, the first time included: whoever
    must not miss an event reads the database then (master/accounts.py)."""

    RETRY = 1.0  # seconds between reconnects

    def __init__(self, url: str, channel: str, deliver: Callable[[str], None],
                 connected: Callable[[], None] = lambda: None) -> None:
        self._conninfo = _libpq_conninfo(url)
        self._channel = channel
        self._deliver = deliver
        self._connected = connected
        self._stop = threading.Event()
        self.listening = threading.Event()  # set once LISTEN took effect (tests wait on it)
        self._thread = threading.Thread(target=self._run, name=f"listen-{channel}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        import psycopg  # only PostgreSQL deployments need the driver

        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    conn.execute(f'LISTEN "{self._channel}"')
                    self.listening.set()
                    self._connected()
                    while not self._stop.is_set():
                        # Each payload is delivered as it arrives; the generator ends every
                        # half second so that stop() is noticed.
                        for note in conn.notifies(timeout=0.5):
                            self._deliver(note.payload)
            except Exception as exc:  # psycopg.OperationalError and kin: the server went away
                self.listening.clear()
                if not self._stop.is_set():
                    log.warning("wake-up listener lost its connection (%s); reconnecting", exc)
                    self._stop.wait(self.RETRY)


def _libpq_conninfo(url: str) -> str:
    """SQLAlchemy's postgresql+psycopg://… URL as a libpq connection string."""
    parsed = make_url(url)
    parts = {"user": parsed.username, "password": parsed.password, "host": parsed.host,
             "port": parsed.port, "dbname": parsed.database, **parsed.query}
    return " ".join(f"{k}='{_quote(str(v))}'" for k, v in parts.items() if v is not None)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")
