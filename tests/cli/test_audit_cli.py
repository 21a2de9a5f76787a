"""``pdp audit query|export|verify|head|prune`` through click's CliRunner, on every
backend (the store named by PDP_DATABASE_URL)."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from pdp.audit import chain, queries
from pdp.cli import main
from tests.audit.log_samples import expected, sample, write


@pytest.fixture
def records(store):
    found = sample(24)
    write(store, found)
    return found


@pytest.fixture
def pdp(database_url):
    runner = CliRunner()

    def run(*args, expect=0, input=None):
        result = runner.invoke(main, list(args), env={"PDP_DATABASE_URL": database_url},
                               input=input)
        assert result.exit_code == expect, (
            f"pdp {' '.join(args)} → {result.exit_code}\nstdout:\n{result.stdout}\n"
            f"stderr:\n{result.stderr}\n{result.exception!r}")
        return result

    return run


def test_query_as_json_with_filters_and_pages(pdp, records):
    out = json.loads(pdp("audit", "query", "--decision", "deny", "--caller", "svc-a",
                         "--json").stdout)
    assert [d["decision_id"] for d in out["decisions"]] == expected(
        records, decision="deny", caller="svc-a")
    first = json.loads(pdp("audit", "query", "--limit", "10", "--json").stdout)
    second = json.loads(pdp("audit", "query", "--limit", "10", "--cursor",
                            first["next_cursor"], "--json").stdout)
    assert [d["decision_id"] for d in first["decisions"] + second["decisions"]] == \
        expected(records)[:20]


def test_query_filters_by_time_policy_and_resource(pdp, records):
    out = json.loads(pdp("audit", "query", "--from", "2026-11-01T11:25:00Z",
                         "--to", "2026-11-01", "--json").stdout)
    assert out["decisions"] == []
    out = json.loads(pdp("audit", "query", "--from", "2026-11-01T11:25:00Z",
                         "--to", "2026-11-02", "--policy", "admins-anything",
                         "--resource-type", "document", "--json").stdout)
    assert [d["decision_id"] for d in out["decisions"]] == expected(
        records, time_from=records[5].time, policy_id="admins-anything",
        resource_type="document")


def test_query_prints_a_table_and_says_how_to_continue(pdp, records):
    result = pdp("audit", "query", "--limit", "3", "--subject", "alice")
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["SEQ", "TIME", "DECISION", "CALLER"]
    assert len(lines) == 4 and "d-0020" in lines[1]
    assert "more: --cursor " in result.stderr


@pytest.mark.parametrize("args", [["--decision", "maybe"], ["--from", "yesterday"],
                                  ["--to", "2026-11-01T10:00:00"], ["--limit", "0"]])
def test_query_refuses_bad_options(pdp, args):
    result = pdp("audit", "query", *args, expect=2)
    assert "Invalid value" in result.stderr


def test_query_refuses_a_bad_cursor(pdp):
    result = pdp("audit", "query", "--cursor", "nope", expect=1)
    assert "cursor" in result.stderr


def test_export_ndjson_and_csv_match_the_query(pdp, records, tmp_path):
    listed = json.loads(pdp("audit", "query", "--action", "read", "--limit", "1000",
                            "--json").stdout)["decisions"]
    out = pdp("audit", "export", "--format", "ndjson", "--action", "read").stdout
    assert [json.loads(line) for line in out.splitlines()] == listed
    target = tmp_path / "out.csv"
    result = pdp("audit", "export", "--format", "csv", "--action", "read", "-o", str(target))
    assert result.stdout == ""
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert [r["decision_id"] for r in rows] == [d["decision_id"] for d in listed]
    assert [json.loads(r["context"]) for r in rows] == [d["context"] for d in listed]


def test_export_needs_a_known_format(pdp):
    assert "--format" in pdp("audit", "export", expect=2).stderr
    assert "xml" in pdp("audit", "export", "--format", "xml", expect=2).stderr


def test_verify_and_head(pdp, store, records):
    result = pdp("audit", "verify")
    assert result.stdout.startswith("ok: 24 record(s) verified (positions 1 to 24)")
    seq, hash_ = pdp("audit", "head").stdout.split()
    assert (int(seq), hash_) == chain.head(store) and seq == "24"
    assert json.loads(pdp("audit", "head", "--json").stdout) == {"seq": 24, "hash": hash_}
    assert pdp("audit", "verify", "--from", "20").stdout.startswith("ok: 5 record(s)")


def test_verify_names_the_first_tampered_record(pdp, store, records):
    with store.write() as s:
        s.execute(sa.text("UPDATE decision_log SET decision = 'allow' "
                          "WHERE decision_id IN ('d-0006', 'd-0012')"))
    result = pdp("audit", "verify", expect=1)
    assert "record 7 (decision d-0006): altered" in result.stderr
    assert "6 record(s) verified before it" in result.stderr


def test_verify_names_a_deleted_record(pdp, store, records):
    with store.write() as s:
        s.execute(sa.text("DELETE FROM decision_log_policies WHERE seq = 5"))
        s.execute(sa.text("DELETE FROM decision_log WHERE seq = 5"))
    result = pdp("audit", "verify", expect=1)
    assert "record 5" in result.stderr and "deleted" in result.stderr


def test_an_empty_log_verifies(pdp):
    assert pdp("audit", "verify").stdout.startswith("ok: 0 record(s) verified")
    assert pdp("audit", "head").stdout == f"0 {chain.GENESIS_HASH}\n"


def test_prune_asks_then_keeps_the_chain_verifiable(pdp, store, records):
    before = (records[10].time).strftime("%Y-%m-%dT%H:%M:%SZ")
    aborted = pdp("audit", "prune", "--before", before, input="n\n", expect=1)
    assert "remove 10 record(s)" in aborted.stderr and "(positions 1 to 10)" in aborted.stderr
    assert queries.count_decisions(store) == 24
    result = pdp("audit", "prune", "--before", before, input="y\n")
    assert "pruned 10 record(s)" in result.stdout and "checkpoint at 25" in result.stdout
    assert queries.count_decisions(store) == 14
    assert pdp("audit", "verify").stdout.startswith("ok: 15 record(s) verified (positions 11")
    assert "nothing to prune" in pdp("audit", "prune", "--before", before, "--yes").stdout
    everything = (records[-1].time + timedelta(days=1)).strftime("%Y-%m-%d")
    # the first checkpoint is newer than that (it was written now): it stays
    assert "pruned 14 record(s)" in pdp("audit", "prune", "--before", everything,
                                        "--yes").stdout
    assert pdp("audit", "verify").stdout.startswith("ok: 2 record(s) verified (positions 25")


def test_export_shows_progress_on_a_terminal(pdp, records, monkeypatch):
    import sys

    audit_cli = sys.modules["pdp.cli.audit"]

    assert pdp("audit", "export", "--format", "ndjson").stderr == ""
    monkeypatch.setattr(audit_cli, "_stderr_is_tty", lambda: True)
    monkeypatch.setattr(audit_cli, "PROGRESS_EVERY", 10)
    result = pdp("audit", "export", "--format", "ndjson")
    assert len(result.stdout.splitlines()) == 24
    assert "\r10 records" in result.stderr and "\r20 records" in result.stderr
    assert "24 records exported" in result.stderr


# --------------------------------------------------------------------------- recorded verifications

def test_verify_records_its_result_for_the_console(pdp, store, records):
    from pdp.audit import verifications

    assert pdp("audit", "verify").stdout.startswith("ok: 24 record(s) verified")
    last = verifications.last_verification(store)
    assert last.verified_by == "pdp audit verify" and last.ok
    assert (last.checked, last.head_seq, last.head_hash) == (24, *chain.head(store))
    with store.write() as s:
        s.execute(sa.text("UPDATE decision_log SET decision = 'allow' "
                          "WHERE decision_id = 'd-0006'"))
    result = pdp("audit", "verify", expect=1)
    assert "record 7 (decision d-0006): altered" in result.stderr
    broken = verifications.last_verification(store)
    assert broken.id > last.id and not broken.ok
    assert (broken.problem, broken.seq, broken.checked) == ("altered", 7, 6)


def test_verify_without_recording_and_from_a_position(pdp, store, records):
    from pdp.audit import verifications

    assert pdp("audit", "verify", "--no-record").stdout.startswith("ok: 24 record(s)")
    assert pdp("audit", "verify", "--from", "20").stdout.startswith("ok: 5 record(s)")
    assert verifications.last_verification(store) is None
    assert "--no-record" in pdp("audit", "verify", "--help").stdout


def test_verify_still_answers_when_its_result_cannot_be_recorded(pdp, records, monkeypatch):
    from pdp.audit import verifications
    from pdp.store import StoreError

    def down(*args, **kwargs):
        raise StoreError("database error: read-only transaction")

    monkeypatch.setattr(verifications, "record", down)
    result = pdp("audit", "verify")
    assert result.stdout.startswith("ok: 24 record(s) verified")
    assert "warning: the result could not be recorded" in result.stderr
