"""Fresh planner statistics for searches on PostgreSQL.

Autovacuum analyses a table up to a minute after a tenth of it changed. A search right after
a sweep has logged its runs is planned with the statistics of the still-empty tables: every
join looks like one row, and the nested loop chosen for that scans the metrics once per run,
a hundred times slower than the plan with real statistics. So before a search, at most once
per interval and process, the tables that changed past autovacuum's own threshold are
analysed at once. SQLite's planner needs no statistics for these queries.
"""

from __future__ import annotations

import functools
import logging
import time

from sqlalchemy import Connection, Table, bindparam, text
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.types import String

from loopline.store.database import Database

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 30.0


@functools.cache
def _stale() -> TextClause:
    """The query naming the stale tables (built on first use: PostgreSQL's types are only
    imported where PostgreSQL is used)."""
    from sqlalchemy.dialects.postgresql import ARRAY

    return text(
        "SELECT relname FROM pg_stat_user_tables"
        " WHERE schemaname = current_schema() AND relname = ANY(:names)"
        " AND n_mod_since_analyze > 50 + 0.1 * n_live_tup"
    ).bindparams(bindparam("names", type_=ARRAY(String)))


class PlannerStatistics:
    def __init__(self, db: Database, tables: tuple[Table, ...]) -> None:
        self._db = db
        self._names = [table.name for table in tables]
        self._checked_at = float("-inf")

    def refresh(self) -> None:
        """Analyse the stale tables, if the last look is older than CHECK_INTERVAL_S."""
        if self._db.dialect != "postgresql" or time.monotonic() - self._checked_at < CHECK_INTERVAL_S:
            return
        self._checked_at = time.monotonic()
        self._db.write(self._analyse_stale)

    def _analyse_stale(self, conn: Connection) -> None:
        stale = list(conn.execute(_stale(), {"names": self._names}).scalars())
        if stale:
            quote = conn.dialect.identifier_preparer.quote
            # SKIP_LOCKED: another process analysing the same table has it in hand.
            conn.exec_driver_sql(f"ANALYZE (SKIP_LOCKED) {', '.join(quote(name) for name in stale)}")
            log.debug("analysed %s for search", ", ".join(stale))
