"""The decision log's write path encodes each record's JSON once: the JSON columns'
canonical texts make up the hashed body and are stored as they are
(:class:`~pdp.store.models.PreEncodedJSON`). What is stored reads back as what the
earlier path (the ORM binding each JSON value with ``json.dumps``) stored, the hash
is the one the earlier path computed, and the chain verifies, on every backend."""

from __future__ import annotations

import dataclasses
import random
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from pdp.audit import chain
from pdp.audit.record import AuditRecord, EncodedRecord, canonical_json, plain_json_text
from pdp.store.models import AuditChainHeadRow, DecisionLogPolicyRow, DecisionLogRow, JSONText

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)

ODD_TEXT = 'é ☃ \u2028 "quoted" \\ \n\t \x00 \x1f 𝄞'
#: For text columns: PostgreSQL text cannot hold NUL (JSON text can: as \u0000).
TEXT = ODD_TEXT.replace("\x00", "")


def record(i: int, prefix: str) -> AuditRecord:
    claims = {"sub": f"u{i}", "roles": ["viewer", ODD_TEXT], "n": i, "f": 1.5, "big": 2 ** 70,
              "tiny": 1e-300, "neg": -0.0, "ok": i % 2 == 0, "none": None,
              "nested": {"z": [1, {"y": []}], "a": {}}, ODD_TEXT: ODD_TEXT}
    return AuditRecord(
        decision_id=f"{prefix}-{i:04d}", time=T0 + timedelta(milliseconds=1001 * i),
        caller="svc-é", policy_set="default", policy_version=2,
        subject=None if i % 3 == 0 else f"u{i}", claims=claims, action="read",
        resource_type="document", resource_id=f"d/{i} {TEXT}", decision="allow",
        action_attributes=None if i % 2 else {"n": i},
        resource_attributes=None if i % 4 == 1 else {"owner": "bob", "tags": ["a", "b"]},
        context={} if i % 5 == 0 else {"ip": "10.0.0.1", "time": "2026-11-29T12:00:00Z"},
        policies=["p-a", "p-b", "p-a"] if i % 2 else [], reasons=["r", ODD_TEXT],
        errors=[{"code": "eval_error", "message": ODD_TEXT}] if i % 3 == 1 else [],
        evaluation_us=i * 7, redacted=["email"] if i % 2 else [])


def records(prefix: str, n: int = 12) -> list[AuditRecord]:
    out = []
    for i in range(n):
        r = record(i, prefix)
        if i % 2:      # as build_record marks it: values already plain JSON
            object.__setattr__(r, "plain_json", True)
        out.append(r)
    return out


def old_append(db, items: list[AuditRecord]) -> None:
    """The write path before pre-encoding: ORM bulk insert of the Python values,
    ``record_hash(prev, row_body(row))``."""
    with db.write() as session:
        head = session.get(AuditChainHeadRow, 1)
        seq, prev = (head.seq, head.hash) if head else (0, chain.GENESIS_HASH)
        rows, policy_rows = [], []
        for r in items:
            row = r.to_dict()
            row.update(time=r.time, kind="decision", details=None)
            seq += 1
            row.update(seq=seq, prev_hash=prev)
            row["hash"] = prev = chain.record_hash(prev, chain.row_body(row))
            rows.append(row)
            policy_rows += [{"seq": seq, "policy_id": p} for p in dict.fromkeys(r.policies)]
        session.execute(sa.insert(DecisionLogRow), rows)
        if policy_rows:
            session.execute(sa.insert(DecisionLogPolicyRow), policy_rows)
        session.execute(sa.update(AuditChainHeadRow).where(AuditChainHeadRow.id == 1)
                        .values(seq=seq, hash=prev))


def stored(db) -> dict[str, tuple[bytes, tuple, str, str]]:
    """decision id → (canonical JSON of the row's body without seq and id, which JSON
    columns are SQL NULL, prev_hash, hash)."""
    table = DecisionLogRow.__table__
    nulls = [table.c[name].is_(None).label(name) for name in chain.JSON_COLUMNS]
    out = {}
    with db.read() as session:
        flags = {row.decision_id: tuple(bool(getattr(row, n)) for n in chain.JSON_COLUMNS)
                 for row in session.execute(sa.select(table.c.decision_id, *nulls))}
        for row in session.scalars(sa.select(DecisionLogRow).order_by(DecisionLogRow.seq)):
            body = chain.row_body(row)
            del body["seq"], body["decision_id"]
            out[row.decision_id] = (canonical_json(body), flags[row.decision_id],
                                    row.prev_hash, row.hash)
    return out


def test_the_new_path_stores_what_the_old_one_stored_and_the_chain_verifies(store):
    old, new = records("old"), records("new")
    old_append(store, old)
    result = chain.append(store, new)
    assert result.inserted == len(new)
    old_append(store, records("old2", 3))           # the old path after the new one
    verified = chain.verify(store, page_size=5)
    assert verified.ok and verified.checked == 2 * len(new) + 3, verified
    rows = stored(store)
    for o, n in zip(old, new):
        assert rows[n.decision_id][:2] == rows[o.decision_id][:2], n.decision_id
    # the values read back are the record's own (and so are the policy rows)
    with store.read() as session:
        for r in new:
            row = session.scalars(sa.select(DecisionLogRow)
                                  .where(DecisionLogRow.decision_id == r.decision_id)).one()
            assert canonical_json(chain.row_body(row)["claims"]) == canonical_json(r.claims)
            assert row.action_attributes == r.action_attributes
            assert row.resource_attributes == r.resource_attributes
            assert row.details is None
            policies = session.scalars(sa.select(DecisionLogPolicyRow.policy_id)
                                       .where(DecisionLogPolicyRow.seq == row.seq)
                                       .order_by(DecisionLogPolicyRow.policy_id)).all()
            assert policies == sorted(set(r.policies))


def test_the_hash_is_the_old_paths_hash(store):
    """The hash of each record is ``record_hash(prev, row_body(row))`` of the values
    given, as the old path computed it (not only of what is read back)."""
    new = records("h")
    result = chain.append(store, new)
    prev = chain.GENESIS_HASH
    for seq, r in enumerate(new, start=1):
        row = r.to_dict()
        row.update(time=r.time, kind="decision", details=None, seq=seq)
        prev = chain.record_hash(prev, chain.row_body(row))
        assert stored(store)[r.decision_id][3] == prev
    assert result.head_hash == prev


def test_a_checkpoint_and_a_replayed_record_still_verify(store):
    chain.append(store, records("a", 5))
    chain.append_checkpoint(store, 2, details={"note": ODD_TEXT})
    replayed = [AuditRecord.from_json(r.to_json()) for r in records("b", 4)]
    assert not any(r.plain_json for r in replayed)
    chain.append(store, replayed)
    assert chain.verify(store).ok
    with store.read() as session:
        details = session.scalars(sa.select(DecisionLogRow.details)
                                  .where(DecisionLogRow.kind == "checkpoint")).one()
    assert details["note"] == ODD_TEXT and details["pruned_through"] == 2


def test_pre_encoded_and_plain_values_read_back_equal(store):
    """``JSONText`` is stored as it is; any other value (a ``str`` too) is JSON-encoded
    as before."""
    table = DecisionLogRow.__table__
    values = {"claims": JSONText('{"a":[1,2.5,null],"é":"\\u0000x"}'),
              "context": {"b": ODD_TEXT}, "reasons": "not json text", "policies": None,
              "errors": JSONText("[]"), "details": JSONText("null")}
    with store.write() as session:
        session.execute(sa.insert(table), [{
            "seq": 1, "kind": "decision", "decision_id": "x", "time": T0, "caller": "c",
            "prev_hash": "0" * 64, "hash": "1" * 64, **values}])
    with store.read() as session:
        row = session.scalars(sa.select(DecisionLogRow)).one()
        is_null = session.execute(sa.select(table.c.policies.is_(None),
                                            table.c.details.is_(None))).one()
    assert row.claims == {"a": [1, 2.5, None], "é": "\x00x"}
    assert row.context == {"b": ODD_TEXT}
    assert row.reasons == "not json text"
    assert row.errors == [] and row.policies is None and row.details is None
    assert tuple(is_null) == (False, False)         # JSON null, as JSON binds None


def _random_record(rng: random.Random, i: int) -> AuditRecord:
    def value(depth=0):
        kind = rng.randrange(9 if depth < 3 else 6)
        return [lambda: None, lambda: True, lambda: rng.randrange(-10 ** 20, 10 ** 20),
                lambda: rng.random() * 1e6, lambda: ODD_TEXT[:rng.randrange(len(ODD_TEXT))],
                lambda: "", lambda: [value(depth + 1) for _ in range(rng.randrange(4))],
                lambda: {rng.choice(["a", "b", ODD_TEXT, "é", ""]) + str(rng.randrange(3)):
                         value(depth + 1) for _ in range(rng.randrange(4))},
                lambda: {}][kind]()

    def text():
        return ODD_TEXT[:rng.randrange(len(ODD_TEXT))]

    def column_text():     # NUL in a text column is recorded as U+FFFD (tested below)
        return TEXT[:rng.randrange(len(TEXT))]

    def mapping():
        return {text() + str(k): value() for k in range(rng.randrange(4))}

    return AuditRecord(
        decision_id=f"{column_text()}-{i}",
        time=T0 + timedelta(milliseconds=rng.randrange(10 ** 9)),
        caller=column_text(), policy_set=column_text(), policy_version=rng.randrange(10 ** 9),
        subject=rng.choice([None, column_text()]), claims=mapping(), action=column_text(),
        resource_type=column_text(), resource_id=column_text(),
        decision=rng.choice(["allow", "deny"]),
        action_attributes=rng.choice([None, mapping()]),
        resource_attributes=rng.choice([None, mapping()]), context=mapping(),
        policies=[text() for _ in range(rng.randrange(3))],
        reasons=[text() for _ in range(rng.randrange(3))],
        errors=[mapping() for _ in range(rng.randrange(3))],
        evaluation_us=rng.randrange(10 ** 12), redacted=[text() for _ in range(rng.randrange(2))])


def test_the_body_put_together_from_runs_of_members_is_the_canonical_body():
    """The hashed body is put together from the record's encoded members and its
    position: it is exactly the canonical JSON of the row, as verification reads it
    (and as the ``json`` module writes it: orjson's output, where it is used, is
    the same bytes)."""
    rng = random.Random(7)
    for i in range(2000):
        record = _random_record(rng, i)
        encoded = EncodedRecord.from_record(record)
        seq = rng.randrange(1, 10 ** 12)
        row = {**record.to_dict(), "time": record.time, "kind": "decision", "details": None,
               "seq": seq}
        expected = canonical_json(chain.row_body(row))
        assert encoded.body(seq) == expected
        assert plain_json_text(chain.row_body(row)).encode("utf-8") == expected
        assert encoded.to_json() == record.to_json()
        assert AuditRecord.from_json(encoded.to_json()) == record
        columns = encoded.columns()
        for name in chain.JSON_COLUMNS:
            if name != "details":
                assert columns[name] == plain_json_text(row[name])


def test_the_sqlite_time_text_is_what_sqlalchemy_stores():
    """On SQLite the writer binds ``time`` as text it makes from the record's time
    text (faster than the column type's processor); it is the processor's text for
    every instant a record can have (milliseconds)."""
    from sqlalchemy.dialects import sqlite

    from pdp.audit.record import format_time

    dialect = sqlite.dialect()
    column_type = DecisionLogRow.__table__.c.time.type
    process = column_type.dialect_impl(dialect).bind_processor(dialect)
    bind = chain._time_processor(dialect)
    rng = random.Random(3)
    for i in range(20000):
        value = T0 + timedelta(milliseconds=rng.randrange(-6 * 10 ** 13, 2 * 10 ** 14))
        assert chain._sqlite_time_text(format_time(value)) == process(value), value
        if i % 100 == 0:
            encoded = EncodedRecord.from_record(dataclasses.replace(record(i, "t"), time=value))
            assert bind(encoded) == process(value), value
