"""Load a shop's CSV export into Kefu from the command line, through the same service as the
shop API (``run_batch``: the same validation, idempotency and ``updated_at`` rules).

    python -m ticketing.shop.ingest.csv_import import products.csv --kind products
        [--dry-run] [--batch 1000] [--no-notify] [--errors errors.csv]
        [--timezone Asia/Shanghai] [--encoding utf-8-sig]

The file is streamed (a batch of records in memory at a time), one transaction per batch of
``--batch`` records. A refused line changes nothing and is reported with its line number (the
header is line 1), its key, the error code and message, on stderr and in ``--errors``; the
other lines go on. ``--dry-run`` runs every batch against the database and rolls it back:
every check, nothing written (no audit row either). Columns: ``csv_columns`` and
``docs/integration.md``; templates in ``docs/templates/``. A real run is audited once
(``shop.csv_import``, actor ``cli``, counts only). Exit code 0: every line went in (or was
already there); 1: some lines were refused; 2: bad usage (file, header, options).
"""

from __future__ import annotations

import argparse
import codecs
import csv
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.orm import Session, sessionmaker

from ticketing.core import audit
from ticketing.core.clock import utcnow
from ticketing.core.db import make_engine, make_session_factory
from ticketing.core.pii import PiiCipher
from ticketing.core.settings import load_settings
from ticketing.shop.ingest.batch import MAX_ROWS, RowResult, run_batch
from ticketing.shop.ingest.change import Context, Status
from ticketing.shop.ingest.csv_columns import (
    LAYOUTS,
    CellError,
    Layout,
    child_fields,
    record_fields,
)

USAGE_ERROR = 2
SOME_LINES_FAILED = 1
PROGRESS_EVERY = 10.0  # seconds between plain progress lines when stderr is not a terminal
TTY_EVERY = 0.2  # seconds between redraws of the progress bar
BAR = 24


class UsageError(Exception):
    """Bad options, an unreadable file or a wrong header: nothing is imported (exit 2)."""


@dataclass(frozen=True)
class LineError:
    line: int
    key: str | None
    code: str
    field: str | None
    message: str


@dataclass
class Record:
    """One record of the file: its fields for the service and the lines it came from."""

    line: int
    key: str | None
    fields: dict[str, Any] = field(default_factory=dict)
    child_lines: list[int] = field(default_factory=list)
    last_line: int = 0
    problem: LineError | None = None


# --- reading -----------------------------------------------------------------------------------
def scan(path: Path, encoding: str) -> int:
    """The file's line count (for the ETA), checking its encoding before anything is written."""
    decoder = codecs.getincrementaldecoder(encoding)()
    lines, last = 0, b"\n"
    with path.open("rb") as raw:
        while chunk := raw.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as error:
                line = lines + chunk[:error.start].count(b"\n") + 1
                raise UsageError(f"line {line} is not {encoding}: save the file as UTF-8 "
                                 "(Excel: \"CSV UTF-8\") or pass --encoding gb18030") from None
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


def records(reader: Iterator[list[str]], header: list[str], layout: Layout,
            zone: ZoneInfo | None, line_num: Callable[[], int]) -> Iterator[Record]:
    """The file's records in order: a line each, or for orders and shipments the run of
    lines that share a key (one per item or scan)."""
    pending: Record | None = None
    first_seen: dict[str, int] = {}  # orders/shipments: a key's lines must follow each other
    end = line_num()
    for cells in reader:
        line, end = end + 1, line_num()
        if not any(cell.strip() for cell in cells):
            continue
        row = dict(zip(header, cells))
        key = (row.get(layout.key) or "").strip() or None
        continues = layout.child is not None and pending is not None and key is not None \
            and key == pending.key
        if not continues:
            if pending is not None:
                yield pending
            pending = Record(line, key)
        target = pending
        assert target is not None
        target.last_line = end
        if target.problem is not None:
            continue
        try:
            _read_line(layout, target, row, len(cells), len(header), zone, line, continues)
            if layout.child is not None and key is not None and not continues:
                seen = first_seen.setdefault(key, line)
                if seen != line:
                    raise CellError(layout.key, f"{layout.key} was already at line {seen}: the "
                                                "lines of one record must follow each other")
        except CellError as error:
            target.problem = LineError(line, key, "invalid_input", error.column, str(error))
    if pending is not None:
        yield pending


def _read_line(layout: Layout, target: Record, row: dict[str, str], cells: int, columns: int,
               zone: ZoneInfo | None, line: int, continues: bool) -> None:
    if cells > columns:
        raise CellError("row", f"the line has {cells} cells, the header {columns} columns")
    fields = record_fields(layout, row, zone)
    if not continues:
        target.fields = fields
    else:
        differs = [name for name, value in fields.items() if target.fields.get(name) != value]
        if differs:
            raise CellError(differs[0], f"{differs[0]} differs from the record's first line "
                                        f"{target.line}")
    if layout.child is not None:
        child = child_fields(layout, row, zone)
        if child is not None:
            target.fields.setdefault(layout.child, []).append(child)
            target.child_lines.append(line)


def chunks(items: Iterator[Record], size: int) -> Iterator[list[Record]]:
    chunk: list[Record] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --- progress ----------------------------------------------------------------------------------
class Progress:
    """A carriage-return bar on a terminal; a plain line every ``every`` seconds otherwise."""

    def __init__(self, stream: TextIO, *, label: str, total: int, clock: Callable[[], float],
                 every: float) -> None:
        self.stream, self.label, self.total, self.clock = stream, label, max(total, 1), clock
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.every = min(every, TTY_EVERY) if self.tty else every
        self.started = self.last = clock()
        self.drawn = False

    def rate(self, done: int) -> float:
        return done / max(self.clock() - self.started, 1e-9)

    def update(self, done: int) -> None:
        now = self.clock()
        if now - self.last < self.every:
            return
        self.last = now
        rate = self.rate(done)
        share = min(done / self.total, 1.0)
        eta = (self.total - done) / rate if rate > 0 else 0.0
        figures = (f"{done:,}/{self.total:,} lines ({share:.0%}), {rate:,.0f} lines/s, "
                   f"ETA {_duration(eta)}")
        if self.tty:
            bar = "#" * round(share * BAR) + "-" * (BAR - round(share * BAR))
            self.stream.write(f"\r{self.label} [{bar}] {figures}  ")
            self.drawn = True
        else:
            self.stream.write(f"{self.label}: {figures}\n")
        self.stream.flush()

    def clear(self) -> None:
        """Before another line goes to the same stream (an error), on a terminal."""
        if self.drawn:
            self.stream.write("\r\033[K")
            self.drawn = False


def _duration(seconds: float) -> str:
    minutes, rest = divmod(int(seconds + 0.5), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"


# --- importing ---------------------------------------------------------------------------------
@dataclass
class Outcome:
    lines: int = 0
    records: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)


def _ingest(session_factory: sessionmaker[Session], layout: Layout, batch: list[Record],
            ctx: Context, dry_run: bool) -> Iterator[tuple[Status, LineError | None]]:
    """Run one batch in its own transaction (rolled back on a dry run); each record's fate,
    in the file's order."""
    good = [record for record in batch if record.problem is None]
    results: dict[int, RowResult] = {}
    if good:
        with session_factory() as session:
            session.begin()
            try:
                report = run_batch(session, entity_name=layout.kind,
                                   rows=[record.fields for record in good], ctx=ctx)
            except BaseException:
                session.rollback()
                raise
            if dry_run:
                session.rollback()
            else:
                session.commit()
        results = {id(good[result.index]): result for result in report.results}
    for record in batch:
        if record.problem is not None:
            yield Status.ERROR, record.problem
            continue
        result = results[id(record)]
        if result.error is None:
            yield result.status, None
            continue
        child = layout.child_index(result.error.field)
        line = record.child_lines[child] if child is not None and child < len(
            record.child_lines) else record.line
        yield Status.ERROR, LineError(line, result.key or record.key, result.error.code,
                                      layout.column_of(result.error.field), result.error.message)


def import_file(path: Path, *, layout: Layout, session_factory: sessionmaker[Session],
                cipher: PiiCipher, batch: int, dry_run: bool, notify: bool,
                zone: ZoneInfo | None, encoding: str, report: Callable[[LineError], None],
                progress: Callable[[int], Progress], now: Callable[[], datetime]
                ) -> Outcome:
    """Stream ``path`` into the database; ``report`` hears of every refused line."""
    total = scan(path, encoding)
    outcome = Outcome()
    with path.open(encoding=encoding, newline="") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        if not any(header):
            raise UsageError(f"{path.name} is empty: the first line must name the columns")
        problems = layout.header_problems(header)
        if problems:
            raise UsageError(f"{path.name}, line 1: " + "; ".join(problems)
                             + f" (columns of {layout.kind}: {', '.join(layout.columns)})")
        bar = progress(total)
        for chunk in chunks(records(reader, header, layout, zone, lambda: reader.line_num),
                            batch):
            ctx = Context(cipher=cipher, now=now(), notify=notify and not dry_run)
            for status, error in _ingest(session_factory, layout, chunk, ctx, dry_run):
                outcome.counts[status.value] += 1
                if error is not None:
                    outcome.codes[error.code] += 1
                    bar.clear()
                    report(error)
            outcome.records += len(chunk)
            outcome.lines = chunk[-1].last_line
            bar.update(outcome.lines)
        outcome.lines = max(outcome.lines, reader.line_num)
    return outcome


def _audit(session_factory: sessionmaker[Session], kind: str, outcome: Outcome, *,
           notify: bool, batch: int, seconds: float, now: datetime, interrupted: bool) -> None:
    """One audit row per run: what was loaded, in counts (never a value from the file)."""
    with session_factory.begin() as session:
        audit.record(session, action="shop.csv_import", actor_type="cli",
                     target_type="shop_batch", target_id=kind, now=now, details={
                         "lines": outcome.lines, "records": outcome.records,
                         **{status.value: outcome.counts[status.value] for status in Status},
                         "errors": dict(outcome.codes), "notify": notify, "batch": batch,
                         "seconds": round(seconds, 1), "interrupted": interrupted})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ticketing.shop.ingest.csv_import",
                                     description="Load a shop's CSV file into Kefu")
    verbs = parser.add_subparsers(dest="verb", required=True)
    load = verbs.add_parser("import", help="import one CSV file of one kind of record")
    load.add_argument("file", type=Path)
    load.add_argument("--kind", required=True, choices=list(LAYOUTS))
    load.add_argument("--dry-run", action="store_true",
                      help="check every line against the database, write nothing")
    load.add_argument("--batch", type=int, default=MAX_ROWS,
                      help=f"records per transaction (1..{MAX_ROWS})")
    load.add_argument("--no-notify", action="store_true",
                      help="tell no customer about what the file changes (history loads)")
    load.add_argument("--errors", type=Path, help="also write refused lines to this CSV file")
    load.add_argument("--timezone", help="zone of times without an offset (else refused)")
    load.add_argument("--encoding", default="utf-8-sig", help="the file's (default UTF-8)")
    return parser


def run(argv: Sequence[str], *, session_factory: sessionmaker[Session], cipher: PiiCipher,
        stdout: TextIO, stderr: TextIO, now: Callable[[], datetime] = utcnow,
        clock: Callable[[], float] = time.monotonic, progress_every: float = PROGRESS_EVERY
        ) -> int:
    """The command, with its edges passed in (tests give their database and streams)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:  # argparse has written why
        return int(exit_.code or 0)
    try:
        if not 1 <= args.batch <= MAX_ROWS:
            raise UsageError(f"--batch must be 1..{MAX_ROWS}")
        if not args.file.is_file():
            raise UsageError(f"no such file: {args.file}")
        try:
            zone = ZoneInfo(args.timezone) if args.timezone else None
        except (ZoneInfoNotFoundError, ValueError):
            raise UsageError(f"unknown time zone {args.timezone!r}") from None
        try:
            codecs.lookup(args.encoding)
        except LookupError:
            raise UsageError(f"unknown encoding {args.encoding!r}") from None
        return _run(args, zone, session_factory=session_factory, cipher=cipher, stdout=stdout,
                    stderr=stderr, now=now, clock=clock, progress_every=progress_every)
    except UsageError as error:
        stderr.write(f"error: {error}\n")
        return USAGE_ERROR


def _run(args: argparse.Namespace, zone: ZoneInfo | None, *,
         session_factory: sessionmaker[Session], cipher: PiiCipher, stdout: TextIO,
         stderr: TextIO, now: Callable[[], datetime], clock: Callable[[], float],
         progress_every: float) -> int:
    layout, notify = LAYOUTS[args.kind], not args.no_notify
    errors_file = args.errors.open("w", encoding="utf-8-sig", newline="") if args.errors \
        else None
    errors_csv = csv.writer(errors_file) if errors_file is not None else None
    if errors_csv is not None:
        errors_csv.writerow(["line", "key", "code", "field", "message"])

    def report(error: LineError) -> None:
        where = f" ({error.key})" if error.key else ""
        column = f" [{error.field}]" if error.field else ""
        stderr.write(f"line {error.line}{where}: {error.code}: {error.message}{column}\n")
        if errors_csv is not None:
            errors_csv.writerow([error.line, error.key or "", error.code, error.field or "",
                                 error.message])

    started = clock()
    bars: list[Progress] = []  # the one bar, once the file's length is known

    def progress(total: int) -> Progress:
        bars.append(Progress(stderr, label=args.file.name, total=total, clock=clock,
                             every=progress_every))
        return bars[-1]

    outcome, interrupted = Outcome(), False
    try:
        outcome = import_file(args.file, layout=layout, session_factory=session_factory,
                              cipher=cipher, batch=args.batch, dry_run=args.dry_run,
                              notify=notify, zone=zone, encoding=args.encoding, report=report,
                              progress=progress, now=now)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if errors_file is not None:
            errors_file.close()
        for bar in bars:
            bar.clear()
    seconds = clock() - started
    if not args.dry_run and outcome.records:
        _audit(session_factory, layout.kind, outcome, notify=notify, batch=args.batch,
               seconds=seconds, now=now(), interrupted=interrupted)
    _summary(stdout, args, outcome, seconds, interrupted)
    if interrupted:
        return 130
    return SOME_LINES_FAILED if outcome.counts[Status.ERROR.value] else 0


def _summary(out: TextIO, args: argparse.Namespace, outcome: Outcome, seconds: float,
             interrupted: bool) -> None:
    what = "dry run, nothing written: " if args.dry_run else ""
    stopped = " (interrupted)" if interrupted else ""
    counts = ", ".join(f"{status.value} {outcome.counts[status.value]:,}" for status in Status)
    out.write(f"{what}{args.file.name}{stopped}: {outcome.lines:,} lines, "
              f"{outcome.records:,} {args.kind} in {seconds:.1f} s "
              f"({outcome.lines / max(seconds, 1e-9):,.0f} lines/s)\n{counts}\n")
    if outcome.codes:
        out.write("errors: " + ", ".join(f"{code} {n:,}" for code, n in
                                         outcome.codes.most_common()) + "\n")


def main() -> int:
    settings = load_settings()
    session_factory = make_session_factory(make_engine(settings.database_url),
                                           schedule=settings.schedule)
    return run(sys.argv[1:], session_factory=session_factory,
               cipher=PiiCipher(settings.pii_key), stdout=sys.stdout, stderr=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
