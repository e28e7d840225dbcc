"""The way a real shop's data comes into Kefu: products, customers, orders, shipments with
their tracking scans, and refunds, keyed by the shop's own ids.

Everything that feeds Kefu (the desk web's ``/api/v1/shop/`` API, a CSV importer) goes
through the same calls, inside one transaction per batch that the caller opens and commits:

- :func:`run_batch` (``batch``): up to 1,000 rows of one kind, each on its own (a refused row
  changes nothing), a :class:`RowResult` per row, with the lookups read in bulk (``lookups``);
  :func:`ingest_row` for one row at a time, in its own SAVEPOINT.
- :class:`Context` (``change``): the PII cipher, the batch's moment, whether to tell customers.
- :func:`parse` (``rows``): a raw row → its typed row model, or the typed error.

Rules (``docs/rules.md`` §ING-1, §ING-2): idempotent (the same row again is ``unchanged``), an
older ``updated_at`` never overwrites a newer one (``stale``), states only move forward, and
each change that matters to a customer is told once, in their language.
"""

from ticketing.shop.ingest.batch import (
    ENTITIES,
    MAX_ROWS,
    BatchReport,
    RowError,
    RowResult,
    entity,
    ingest_row,
    run_batch,
)
from ticketing.shop.ingest.change import Context, Status
from ticketing.shop.ingest.rows import parse

__all__ = ["ENTITIES", "MAX_ROWS", "BatchReport", "Context", "RowError", "RowResult", "Status",
           "entity", "ingest_row", "parse", "run_batch"]
