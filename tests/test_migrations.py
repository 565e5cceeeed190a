"""Migrations: which time-series path a server gets, and both paths' SQL linted.

TimescaleDB cannot be installed here, so its variant is parsed (pglast, PostgreSQL's own parser)
and its calls are checked against TimescaleDB 2.x's documented API; the native variant is what
every integration test's database is migrated with.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pglast import ast, parse_sql
from pglast.parser import ParseError
from pglast.visitors import Visitor

from cloud.migrate import MIGRATIONS, MigrationRefused, choose_timeseries, migrate, plan
from tests.conftest import PG_SERVER_URL, _url_for

# -- choosing the path (pure) -------------------------------------------------------------------


def test_timescaledb_is_used_only_when_preloaded() -> None:
    assert choose_timeseries(None, preloaded=True, available=True) == "timescale"
    # Installed but not preloaded: CREATE EXTENSION would fail, so the native path is used.
    assert choose_timeseries(None, preloaded=False, available=True) == "native"
    assert choose_timeseries(None, preloaded=False, available=False) == "native"
    assert choose_timeseries("auto", preloaded=False, available=True) == "native"


def test_an_explicit_choice_wins_or_is_refused_with_the_fix() -> None:
    assert choose_timeseries("native", preloaded=True, available=True) == "native"
    assert choose_timeseries("timescale", preloaded=True, available=True) == "timescale"
    with pytest.raises(MigrationRefused, match=r"shared_preload_libraries.*PW_TIMESERIES=native"):
        choose_timeseries("timescale", preloaded=False, available=True)
    with pytest.raises(MigrationRefused, match="not installed"):
        choose_timeseries("timescale", preloaded=False, available=False)
    with pytest.raises(MigrationRefused, match="extension files are missing"):
        choose_timeseries(None, preloaded=True, available=False)
    with pytest.raises(MigrationRefused, match="'timescale', 'native'"):
        choose_timeseries("influx", preloaded=True, available=True)


def test_a_migrated_database_keeps_its_path() -> None:
    assert choose_timeseries(None, preloaded=True, available=True, recorded="native") == "native"
    with pytest.raises(MigrationRefused, match="migrated on the native path"):
        choose_timeseries("timescale", preloaded=True, available=True, recorded="native")


# -- on the real server -------------------------------------------------------------------------


@pytest.fixture
def empty_database() -> Iterator[str]:
    name = f"pw_mig_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_SERVER_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as err:
        pytest.fail(f"PostgreSQL is required at {PG_SERVER_URL}: {err}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        yield _url_for(name)
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.integration
def test_asking_for_timescaledb_on_a_server_without_it_changes_nothing(
    empty_database: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PW_TIMESERIES", "timescale")
    with psycopg.connect(empty_database, autocommit=True) as conn:
        preload = conn.execute("SHOW shared_preload_libraries").fetchone()
        assert preload is not None and "timescaledb" not in preload[0]  # this test's premise
        with pytest.raises(MigrationRefused, match="PW_TIMESERIES=timescale"):
            migrate(conn)
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (0,)
        monkeypatch.setenv("PW_TIMESERIES", "native")
        applied = migrate(conn)
        assert applied == [m.version for m in plan(timescale=False)]
        recorded = conn.execute("SELECT DISTINCT timeseries FROM schema_migrations").fetchall()
        assert recorded == [("native",)]


@pytest.mark.integration
def test_the_test_template_refuses_connections_so_copies_never_collide(
    migrated_template: str,
) -> None:
    with pytest.raises(psycopg.OperationalError, match="not currently accepting connections"):
        psycopg.connect(_url_for(migrated_template), connect_timeout=5).close()


# -- linting both variants ----------------------------------------------------------------------

def _sql(path: Path) -> list[ast.RawStmt]:
    try:
        return list(parse_sql(path.read_text()))
    except ParseError as err:
        pytest.fail(f"{path.name} does not parse: {err}")


class _Calls(Visitor):
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, list[str]]] = []  # name, positional args, named args
        self.tables: dict[str, list[str]] = {}
        self.rel_options: list[tuple[str, str, str | None]] = []  # table, option, value
        self.views: list[tuple[str, list[str]]] = []

    def visit_FuncCall(self, ancestors: object, node: ast.FuncCall) -> None:
        args = list(node.args or ())
        named = [a.name for a in args if isinstance(a, ast.NamedArgExpr)]
        self.calls.append((node.funcname[-1].sval, len(args) - len(named), named))

    def visit_CreateStmt(self, ancestors: object, node: ast.CreateStmt) -> None:
        if node.partbound is None:  # partitions repeat their parent
            self.tables[node.relation.relname] = [
                c.colname for c in node.tableElts or () if isinstance(c, ast.ColumnDef)]

    def visit_AlterTableStmt(self, ancestors: object, node: ast.AlterTableStmt) -> None:
        for cmd in node.cmds:
            options = cmd.def_ if isinstance(cmd.def_, tuple) else ()  # SET (...) only
            for opt in options:
                value = getattr(opt.arg, "sval", None)
                self.rel_options.append((node.relation.relname, f"{opt.defnamespace}.{opt.defname}",
                                         value))

    def visit_CreateTableAsStmt(self, ancestors: object, node: ast.CreateTableAsStmt) -> None:
        options = [f"{o.defnamespace}.{o.defname}" for o in node.into.options or ()]
        self.views.append((node.into.rel.relname, options))


def _walk(timescale: bool) -> _Calls:
    calls = _Calls()
    for migration in plan(timescale):
        for stmt in _sql(migration.path):
            calls(stmt)
    return calls


# TimescaleDB 2.x (2.13 and later: the by_range dimension API), from its API reference:
# name -> (required positional arguments, parameter names in order).
TIMESCALEDB_API: dict[str, tuple[int, tuple[str, ...]]] = {
    "create_hypertable": (2, ("relation", "dimension", "create_default_indexes",
                              "if_not_exists", "migrate_data")),
    "by_range": (1, ("column_name", "partition_interval", "partition_func")),
    "by_hash": (2, ("column_name", "number_partitions", "partition_func")),
    "add_dimension": (2, ("hypertable", "dimension", "if_not_exists")),
    "set_chunk_time_interval": (2, ("hypertable", "chunk_time_interval", "dimension_name")),
    "add_compression_policy": (2, ("hypertable", "compress_after", "if_not_exists",
                                   "schedule_interval", "initial_start", "timezone",
                                   "compress_created_before")),
    "remove_compression_policy": (1, ("hypertable", "if_exists")),
    "add_retention_policy": (2, ("relation", "drop_after", "if_not_exists", "schedule_interval",
                                 "initial_start", "timezone", "drop_created_before")),
    "remove_retention_policy": (1, ("relation", "if_exists")),
    "add_continuous_aggregate_policy": (4, ("continuous_aggregate", "start_offset", "end_offset",
                                            "schedule_interval", "if_not_exists",
                                            "initial_start", "timezone")),
    "remove_continuous_aggregate_policy": (1, ("continuous_aggregate", "if_not_exists",
                                               "if_exists")),
    "add_reorder_policy": (2, ("hypertable", "index_name", "if_not_exists", "initial_start",
                               "timezone")),
    "time_bucket": (2, ("bucket_width", "ts", "offset", "origin", "timezone")),
    "drop_chunks": (1, ("relation", "older_than", "newer_than", "verbose", "created_before",
                        "created_after")),
}
TIMESCALEDB_TABLE_OPTIONS = {
    "timescaledb.compress", "timescaledb.compress_segmentby", "timescaledb.compress_orderby",
    "timescaledb.compress_chunk_time_interval",
}
TIMESCALEDB_VIEW_OPTIONS = {
    "timescaledb.continuous", "timescaledb.materialized_only", "timescaledb.create_group_indexes",
}


def test_every_migration_file_parses() -> None:
    for path in sorted(MIGRATIONS.glob("*.sql")):
        assert _sql(path), f"{path.name} is empty"


def test_both_paths_create_the_same_tables_with_the_same_columns() -> None:
    timescale, native = _walk(timescale=True), _walk(timescale=False)
    assert timescale.tables == native.tables
    assert [m.version for m in plan(True)] == [m.version for m in plan(False)]


def test_timescaledb_calls_match_its_documented_api() -> None:
    walked = _walk(timescale=True)
    used = {name for name, _, _ in walked.calls}
    assert {"create_hypertable", "by_range", "add_compression_policy",
            "add_retention_policy"} <= used
    for name, positional, named in walked.calls:
        if name not in TIMESCALEDB_API:
            continue  # PostgreSQL's own: checked against the server below
        required, params = TIMESCALEDB_API[name]
        assert positional + len(named) <= len(params), f"{name}: too many arguments"
        assert positional >= required or set(params[:required]) <= set(
            params[:positional]) | set(named), f"{name}: missing required arguments"
        assert set(named) <= set(params[positional:]), f"{name}: unknown parameters {named}"


def test_timescaledb_storage_options_name_real_columns() -> None:
    walked = _walk(timescale=True)
    for table, option, value in walked.rel_options:
        if not option.startswith("timescaledb."):
            continue
        assert option in TIMESCALEDB_TABLE_OPTIONS, option
        if option in ("timescaledb.compress_segmentby", "timescaledb.compress_orderby"):
            columns = [c.strip().split()[0] for c in (value or "").split(",")]
            assert set(columns) <= set(walked.tables[table]), (table, option, value)
    for _view, options in walked.views:
        assert {o for o in options if o.startswith("timescaledb.")} <= TIMESCALEDB_VIEW_OPTIONS
    # every hypertable's time column exists in its table
    for stmt_file in plan(True):
        for stmt in _sql(stmt_file.path):
            node = stmt.stmt
            if not isinstance(node, ast.SelectStmt):
                continue
            for target in node.targetList or ():
                call = target.val
                if isinstance(call, ast.FuncCall) and call.funcname[-1].sval == "create_hypertable":
                    table = call.args[0].val.sval
                    dimension = call.args[1]
                    column = dimension.args[0].val.sval
                    assert column in walked.tables[table], (table, column)


@pytest.mark.integration
def test_other_functions_the_timescaledb_variant_calls_exist_in_postgresql() -> None:
    others = {name for name, _, _ in _walk(timescale=True).calls
              if name not in TIMESCALEDB_API} - {"pw_ensure_partitions"}
    with psycopg.connect(PG_SERVER_URL, connect_timeout=5) as conn:
        known = {r[0] for r in conn.execute(
            "SELECT DISTINCT proname FROM pg_proc WHERE proname = ANY(%s)", (sorted(others),))}
    assert others <= known, others - known


def test_the_unread_continuous_aggregate_is_gone() -> None:
    # It was never read; 0705 drops it from databases migrated before.
    walked = _walk(timescale=True)
    assert walked.views == []
    drop = (MIGRATIONS / "0705_drop_unread_aggregate.timescale.sql").read_text()
    assert "DROP MATERIALIZED VIEW IF EXISTS tag_reads_per_minute" in drop
