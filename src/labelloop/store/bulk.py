"""Many rows in one PostgreSQL statement: ``INSERT ... SELECT FROM unnest(arrays)``.

An ``executemany`` of a few thousand rows is rendered by SQLAlchemy into multi-row
``VALUES`` statements whose placeholders psycopg then parses on the client, which costs
more than the insert itself. Passing one array per column instead sends a handful of
parameters whatever the number of rows. JSON columns travel as text and are cast.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    Table,
    any_,
    bindparam,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Result
from sqlalchemy.orm import Session

_PG = postgresql.dialect()  # type: ignore[no-untyped-call]


def unnest_insert(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], *, suffix: str = ""
) -> Result[Any]:
    """Insert ``rows`` (dicts with the same keys, column names of ``table``) with one
    statement; ``suffix`` follows it (``ON CONFLICT ... DO NOTHING RETURNING id``)."""
    names = list(rows[0])
    arrays, selected, params = [], [], {}
    for i, name in enumerate(names):
        sql_type = table.c[name].type.compile(dialect=_PG)
        values = [row[name] for row in rows]
        if sql_type in ("JSONB", "JSON"):
            values = [None if v is None else json.dumps(v, ensure_ascii=False) for v in values]
            arrays.append(f"CAST(:p{i} AS TEXT[])")
            selected.append(f"CAST(u.c{i} AS {sql_type})")
        else:
            arrays.append(f"CAST(:p{i} AS {sql_type}[])")
            selected.append(f"u.c{i}")
        params[f"p{i}"] = values
    aliases = ", ".join(f"c{i}" for i in range(len(names)))
    statement = (
        f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {', '.join(selected)} "
        f"FROM unnest({', '.join(arrays)}) AS u({aliases}) {suffix}"
    )
    return session.execute(text(statement), params)


def id_in(session: Session, column: Any, ids: Sequence[int]) -> Any:
    """``column IN ids`` with one parameter whatever the number of ids, so nothing is
    compiled or bound per id: an array on PostgreSQL (``= ANY(:ids)``), a JSON array
    read by ``json_each`` on SQLite (``IN (SELECT value FROM json_each(:ids))``)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return column == any_(bindparam(None, list(ids), type_=ARRAY(Integer)))
    if dialect == "sqlite":
        listed = json.dumps([int(i) for i in ids])
        return column.in_(
            select(literal_column("value")).select_from(
                func.json_each(bindparam(None, listed, type_=String))
            )
        )
    return column.in_(list(ids))
