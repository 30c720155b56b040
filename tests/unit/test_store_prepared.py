"""Prepared statements (store/prepared.py): every statement of the scan merge compiles on both
dialects with exactly the parameters its callers pass, in a usable order."""

from __future__ import annotations

import pytest
from sqlalchemy import bindparam, column, insert, select, table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.compiler import SQLCompiler

from regwatch.store import claims, merge, scans
from regwatch.store.prepared import Prepared, json_text

DIALECTS = [sqlite.dialect(), postgresql.psycopg.dialect()]  # type: ignore[attr-defined]
STATEMENTS = [
    (f"{module.__name__}.{name}", value)
    for module in (claims, merge, scans)
    for name, value in vars(module).items()
    if isinstance(value, Prepared)
]


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
@pytest.mark.parametrize(("name", "prepared"), STATEMENTS, ids=[n for n, _ in STATEMENTS])
def test_each_statement_takes_exactly_its_declared_parameters(
    name: str, prepared: Prepared, dialect: object
) -> None:
    compiled = prepared._build(dialect.name).compile(dialect=dialect)  # type: ignore[attr-defined]
    assert isinstance(compiled, SQLCompiler)
    used = set(compiled.positiontup or compiled.binds)
    assert used == set(prepared.names), name


def test_a_positional_order_differing_from_the_declared_one_is_reordered() -> None:
    t = table("t", column("a"), column("b"))
    prepared = Prepared(
        lambda _: select(t.c.a).where(t.c.b == bindparam("b"), t.c.a == bindparam("a")), "a", "b"
    )

    class Conn:  # only what _compile reads
        dialect = sqlite.dialect()

    sql, shape = prepared._compile(Conn())  # type: ignore[arg-type]
    assert sql.endswith("WHERE t.b = ? AND t.a = ?")
    assert shape(("A", "B")) == ("B", "A")
    unknown = Prepared(lambda _: insert(t).values(a=bindparam("x")), "a")
    with pytest.raises(ValueError, match="'x'"):
        unknown._compile(Conn())  # type: ignore[arg-type]


def test_json_values_are_serialised_and_empty_ones_null() -> None:
    assert json_text({"k": "v"}) == '{"k": "v"}'
    assert json_text({}) is None
    assert json_text(None) is None
