"""The decision log from the command line: ``pdp audit query|export|verify|head|prune``.

The store is the one named by ``PDP_DATABASE_URL`` (default ``var/pdp.db``).
Filters are the same as those of ``GET /v1/decisions``
(:class:`pdp.audit.queries.DecisionFilter`). Exit status: 0 success; 1 a refused
request, a broken chain or a store that cannot be used; 2 a usage error.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from datetime import date, datetime, timezone

import click

from pdp.audit import queries
from pdp.cli._common import EXIT_REFUSED, open_database

#: ``verified_by`` of the verifications this command records.
VERIFIED_BY = "pdp audit verify"
#: Records between two progress lines of ``pdp audit export`` (stderr, TTY only).
PROGRESS_EVERY = 10_000


# --------------------------------------------------------------------------- options

class TimeParam(click.ParamType):
    """RFC 3339 (``2026-11-29T12:00:00Z``) or a date (``2026-11-29``, midnight UTC)."""

    name = "TIME"

    def convert(self, value, param, ctx):
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        try:
            if "T" not in text.upper() and len(text) == 10:
                d = date.fromisoformat(text)
                return datetime(d.year, d.month, d.day, tzinfo=timezone.utc)
            parsed = datetime.fromisoformat(text.upper())
        except ValueError:
            self.fail(f"{value!r} is not an RFC 3339 time (2026-11-29T12:00:00Z) "
                      "or a date (2026-11-29)", param, ctx)
        if parsed.tzinfo is None:
            self.fail(f"{value!r} has no UTC offset (add Z or +hh:mm)", param, ctx)
        return parsed.astimezone(timezone.utc)


TIME = TimeParam()

_FILTER_OPTIONS = [
    click.option("--from", "time_from", type=TIME, help="Decisions at or after this time."),
    click.option("--to", "time_to", type=TIME, help="Decisions before this time."),
    click.option("--subject", help="The subject's id (sub)."),
    click.option("--caller", help="The calling service (API key name)."),
    click.option("--action"),
    click.option("--resource-type"),
    click.option("--resource-id"),
    click.option("--decision", type=click.Choice(queries.DECISIONS)),
    click.option("--policy", "policy_id", metavar="ID",
                 help="Decisions this policy determined."),
    click.option("--policy-set", metavar="S"),
    click.option("--policy-version", type=click.IntRange(min=1), metavar="N"),
]


def filter_options(command):
    for option in reversed(_FILTER_OPTIONS):
        command = option(command)

    @functools.wraps(command)
    def wrapped(**kwargs):
        names = queries.DecisionFilter.__dataclass_fields__
        kwargs["filter"] = queries.DecisionFilter(
            **{name: kwargs.pop(name) for name in list(kwargs) if name in names})
        return command(**kwargs)

    return wrapped


# --------------------------------------------------------------------------- commands

@click.group()
def audit() -> None:
    """The decision log: query, export, verify the hash chain, prune."""


@audit.command("query")
@filter_options
@click.option("--limit", type=click.IntRange(1, queries.MAX_LIMIT), default=queries.DEFAULT_LIMIT,
              show_default=True, help="Decisions per page.")
@click.option("--cursor", help="Continue after a previous page (its next_cursor).")
@click.option("--json", "as_json", is_flag=True,
              help='One JSON document: {"decisions": [...], "next_cursor": ...}.')
def query(filter: queries.DecisionFilter, limit: int, cursor: str | None,
          as_json: bool) -> None:
    """Show matching decisions, newest first, one page at a time."""
    page = queries.list_decisions(open_database(), filter, limit=limit, cursor=cursor)
    if as_json:
        click.echo(json.dumps({"decisions": page.decisions, "next_cursor": page.next_cursor},
                              indent=2, ensure_ascii=False))
        return
    rows = [[str(d["seq"]), d["time"], d["decision"] or "", d["caller"] or "",
             d["subject"] or "-", d["action"] or "",
             f'{d["resource_type"] or ""}:{d["resource_id"] or ""}',
             f'{d["policy_set"]}@{d["policy_version"]}', ",".join(d["policies"] or []) or "-",
             d["decision_id"]] for d in page.decisions]
    _table(["SEQ", "TIME", "DECISION", "CALLER", "SUBJECT", "ACTION", "RESOURCE", "SET",
            "POLICIES", "ID"], rows)
    if page.next_cursor:
        click.echo(f"more: --cursor {page.next_cursor}", err=True)


@audit.command("export")
@click.option("--format", "fmt", type=click.Choice(("csv", "ndjson")), required=True)
@filter_options
@click.option("-o", "--output", type=click.File("w", encoding="utf-8", lazy=True),
              default="-", help="Write here instead of stdout.")
def export(fmt: str, filter: queries.DecisionFilter, output) -> None:
    """Write every matching decision, newest first, as CSV (with a header row;
    JSON columns as JSON text) or NDJSON (one record per line)."""
    from pdp.api.decisions import csv_line, csv_row, ndjson_line

    show_progress = _stderr_is_tty()
    started = time.monotonic()
    n = 0
    if fmt == "csv":
        output.write(csv_line(queries.COLUMNS))
    for record in queries.iter_decisions(open_database(), filter):
        output.write(csv_line(csv_row(record)) if fmt == "csv" else ndjson_line(record))
        n += 1
        if show_progress and n % PROGRESS_EVERY == 0:
            click.echo(f"\r{n} records ({time.monotonic() - started:.0f}s)", err=True, nl=False)
    output.flush()
    if show_progress:
        click.echo(f"\r{n} records exported in {time.monotonic() - started:.1f}s", err=True)


@audit.command("verify")
@click.option("--from", "from_seq", type=click.IntRange(min=1), metavar="SEQ",
              help="Start at this record (its prev_hash is taken as given).")
@click.option("--no-record", is_flag=True,
              help="Do not record the result in audit_verifications (where the console "
                   "shows it). Runs with --from are never recorded.")
def verify(from_seq: int | None, no_record: bool) -> None:
    """Check the hash chain; exit 1 naming the first broken record.

    A full run (without --from) is recorded with its outcome, as done by
    "pdp audit verify", unless --no-record is given."""
    from pdp.audit import chain, verifications
    from pdp.store import StoreError

    db = open_database()
    result = chain.verify(db, from_seq=from_seq)
    if from_seq is None and not no_record:
        try:
            verifications.record(db, result, by=VERIFIED_BY)
        except StoreError as exc:
            click.echo(f"warning: the result could not be recorded: {exc}", err=True)
    if result.ok:
        span = (f" (positions {result.first_seq} to {result.last_seq})"
                if result.checked else "")
        click.echo(f"ok: {result.checked} record(s) verified{span}; head {result.head_seq} "
                   f"{result.head_hash}")
        return
    which = f"record {result.seq}" + (f" (decision {result.decision_id})"
                                      if result.decision_id else "")
    click.echo(f"broken: {which}: {result.problem}: {result.message}", err=True)
    click.echo(f"{result.checked} record(s) verified before it", err=True)
    raise SystemExit(EXIT_REFUSED)


@audit.command("head")
@click.option("--json", "as_json", is_flag=True, help='{"seq": N, "hash": "…"}')
def head(as_json: bool) -> None:
    """Print the chain head (seq and hash), to anchor outside the database."""
    from pdp.audit import chain

    seq, hash_ = chain.head(open_database())
    if as_json:
        click.echo(json.dumps({"seq": seq, "hash": hash_}))
    else:
        click.echo(f"{seq} {hash_}")


@audit.command("prune")
@click.option("--before", type=TIME, required=True,
              help="Remove decisions older than this time (or date, midnight UTC).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def prune(before: datetime, yes: bool) -> None:
    """Remove records older than --before; a checkpoint keeps the chain verifiable."""
    from pdp.audit import prune as retention

    db = open_database()
    n, first, last = retention.plan(db, before)
    if n == 0:
        click.echo(f"nothing to prune before {queries.rfc3339(before)}")
        return
    if not yes:
        click.confirm(f"remove {n} record(s) recorded before {queries.rfc3339(before)} "
                      f"(positions {first} to {last})?", abort=True, err=True)
    result = retention.prune(db, before)
    click.echo(result.describe())


def _stderr_is_tty() -> bool:
    return sys.stderr.isatty()


def _table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    for row in [headers, *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
