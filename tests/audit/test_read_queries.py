"""The read side of the decision log (:mod:`pdp.audit.queries`) on every backend:
each filter, keyset pagination (stable while records are added), one record,
the streaming iterator, statistics."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta, timezone

import pytest
import sqlalchemy as sa

from pdp.audit import chain, queries
from pdp.audit.queries import DecisionFilter
from pdp.errors import RequestError

from .log_samples import BASE, expected, make_record, sample, write


@pytest.fixture
def records(store):
    found = sample(24)
    write(store, found)
    return found


def _ids(page_or_list) -> list[str]:
    items = page_or_list.decisions if isinstance(page_or_list, queries.Page) else page_or_list
    return [d["decision_id"] for d in items]


FILTERS = [
    {},
    {"subject": "alice"},
    {"subject": "nobody"},
    {"caller": "svc-b"},
    {"action": "update"},
    {"resource_type": "folder"},
    {"resource_type": "document", "resource_id": "r-2"},
    {"resource_id": "r-0"},
    {"decision": "deny"},
    {"decision": "allow"},
    {"policy_id": "doc-owner-edit"},
    {"policy_id": "admins-anything"},
    {"policy_id": "admins-anything", "decision": "deny"},
    {"policy_set": "other"},
    {"policy_set": "default", "policy_version": 2},
    {"policy_version": 1},
    {"time_from": BASE + timedelta(minutes=17 * 5)},
    {"time_to": BASE + timedelta(minutes=17 * 5)},
    {"time_from": BASE + timedelta(minutes=17 * 5), "time_to": BASE + timedelta(minutes=17 * 9)},
    {"time_from": BASE + timedelta(minutes=17 * 5, seconds=1),
     "time_to": BASE + timedelta(minutes=17 * 9, seconds=1), "decision": "allow",
     "caller": "svc-b"},
]


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: ",".join(f) or "none")
def test_each_filter_returns_exactly_the_matching_decisions_newest_first(store, records,
                                                                         filters):
    page = queries.list_decisions(store, DecisionFilter(**filters), limit=1000)
    assert _ids(page) == expected(records, **filters)
    assert page.next_cursor is None


def test_filters_really_select_something(records):
    """The sample is varied enough that every non-empty filter above is selective."""
    total = len(records)
    for filters in FILTERS[1:]:
        n = len(expected(records, **filters))
        assert n < total, filters
        if filters != {"subject": "nobody"}:
            assert n > 0, filters


def test_a_record_is_returned_with_every_column(store, records):
    r = records[9]
    [d] = queries.list_decisions(store, DecisionFilter(subject=r.subject, time_from=r.time,
                                                       time_to=r.time + timedelta(seconds=1))
                                 ).decisions
    assert d == queries.get_decision(store, r.decision_id)
    assert d["seq"] == 10 and d["time"] == "2026-11-01T12:33:00Z"
    assert {k: d[k] for k in ("decision_id", "caller", "policy_set", "policy_version",
                              "subject", "action", "resource_type", "resource_id",
                              "decision", "policies", "reasons", "errors", "claims",
                              "action_attributes", "resource_attributes", "context",
                              "redacted", "evaluation_us")} == {
        k: v for k, v in r.to_dict().items() if k != "time"}
    assert len(d["hash"]) == 64 and len(d["prev_hash"]) == 64
    assert list(d) == list(queries.COLUMNS)


def test_get_an_unknown_decision_is_not_found(store, records):
    with pytest.raises(queries.DecisionNotFound) as info:
        queries.get_decision(store, "nope")
    assert info.value.code == "decision_not_found"


def test_checkpoints_are_never_listed(store, records):
    chain.append_checkpoint(store, 3)
    listed = queries.list_decisions(store, limit=1000).decisions
    assert len(listed) == len(records)
    assert all(d["decision_id"] for d in listed)
    assert queries.count_decisions(store) == len(records)


# --------------------------------------------------------------------------- pagination

def test_pages_follow_each_other_without_gaps_or_duplicates(store, records):
    seen, cursor, pages = [], None, 0
    while True:
        page = queries.list_decisions(store, limit=5, cursor=cursor)
        seen += _ids(page)
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == expected(records) and pages == 5


def test_a_page_that_ends_exactly_at_the_last_record_has_no_next_cursor(store, records):
    page = queries.list_decisions(store, limit=24)
    assert len(page.decisions) == 24 and page.next_cursor is None
    page = queries.list_decisions(store, limit=23)
    assert page.next_cursor is not None
    last = queries.list_decisions(store, limit=23, cursor=page.next_cursor)
    assert _ids(last) == [records[0].decision_id] and last.next_cursor is None


def test_pagination_is_stable_while_records_are_added(store, records):
    """New records (higher seq, even with older times) never shift, repeat or hide a
    record of the pages still to come."""
    filt = DecisionFilter(decision="allow")
    first = queries.list_decisions(store, filt, limit=4)
    seen = _ids(first)
    cursor = first.next_cursor
    n = 100
    while cursor is not None:
        # new allow decisions arrive between pages, some stamped in the past
        write(store, [make_record(n, decision="allow", decision_id=f"new-{n}"),
                      make_record(n + 1, decision="allow", decision_id=f"new-{n + 1}",
                                  time=BASE - timedelta(days=1))])
        n += 2
        page = queries.list_decisions(store, filt, limit=4, cursor=cursor)
        seen += _ids(page)
        cursor = page.next_cursor
    assert seen == expected(records, decision="allow")
    assert len(seen) == len(set(seen))
    newest = queries.list_decisions(store, filt, limit=2)
    assert _ids(newest) == [f"new-{n - 1}", f"new-{n - 2}"]


@pytest.mark.parametrize("cursor", ["", "abc", "czE6", "czE6eA", "!!!!", "x" * 65,
                                    "czE6LTE"])
def test_a_cursor_we_did_not_hand_out_is_refused(store, cursor):
    with pytest.raises(RequestError) as info:
        queries.list_decisions(store, cursor=cursor)
    assert info.value.field == "cursor"


@pytest.mark.parametrize("limit", [0, -1, 1001, True])
def test_limit_is_from_1_to_1000(store, limit):
    with pytest.raises(RequestError) as info:
        queries.list_decisions(store, limit=limit)
    assert info.value.field == "limit"


def test_cursors_are_opaque_and_round_trip():
    assert queries.decode_cursor(queries.encode_cursor(12345)) == 12345
    assert "12345" not in queries.encode_cursor(12345)


def test_an_unknown_decision_value_is_refused():
    with pytest.raises(RequestError) as info:
        DecisionFilter(decision="maybe")
    assert info.value.field == "decision"


def test_the_queries_use_bound_parameters(store):
    """Filter values never become SQL text."""
    evil = "x' OR '1'='1"
    assert queries.list_decisions(store, DecisionFilter(subject=evil, policy_id=evil)
                                  ).decisions == []


# --------------------------------------------------------------------------- iterating

def test_iter_decisions_reads_page_by_page_and_matches_the_query(store, records, monkeypatch):
    reads = []
    original = queries._page_rows

    def counting(session, where, limit, before):
        rows = original(session, where, limit, before)
        reads.append(len(rows))
        return rows

    monkeypatch.setattr(queries, "_page_rows", counting)
    filt = DecisionFilter(action="read")
    it = queries.iter_decisions(store, filt, page_size=3)
    first = next(it)
    assert reads == [3]                   # only one page read so far
    rest = list(it)
    assert len(rest) == 11 and reads == [3, 3, 3, 3, 0]     # 12 records, 3 a page
    assert [first, *rest] == queries.list_decisions(store, filt, limit=1000).decisions


# --------------------------------------------------------------------------- stats

def _oracle_buckets(records, trunc):
    counts = Counter((trunc(r.time), r.decision) for r in records)
    return [{"start": queries.rfc3339(at), "allow": counts[(at, "allow")],
             "deny": counts[(at, "deny")]} for at in sorted({k[0] for k in counts})]


@pytest.mark.parametrize("bucket,trunc", [
    ("minute", lambda t: t.replace(second=0, microsecond=0)),
    ("hour", lambda t: t.replace(minute=0, second=0, microsecond=0)),
    ("day", lambda t: t.replace(hour=0, minute=0, second=0, microsecond=0)),
])
def test_stats_count_allow_and_deny_per_bucket(store, records, bucket, trunc):
    start, end = BASE, BASE + timedelta(hours=5)
    inside = [r for r in records if start <= r.time < end]
    result = queries.stats(store, start, end, bucket)
    assert result.buckets == _oracle_buckets(inside, trunc)
    assert result.totals == {"allow": sum(r.decision == "allow" for r in inside),
                             "deny": sum(r.decision == "deny" for r in inside)}
    assert result.to_dict()["from"] == "2026-11-01T10:00:00Z"


def test_stats_buckets_are_utc_whatever_the_session_time_zone(store, records):
    if store.is_postgresql:
        @sa.event.listens_for(store.engine, "connect")
        def _tz(dbapi_connection, _record):
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET TIME ZONE 'America/New_York'")
            dbapi_connection.commit()
        store.engine.dispose()
    result = queries.stats(store, BASE, BASE + timedelta(days=1), "day")
    assert result.buckets == [{"start": "2026-11-01T00:00:00Z", "allow": 16, "deny": 8}]


def test_stats_top_denied_and_errors(store, records):
    result = queries.stats(store, BASE - timedelta(days=1), BASE + timedelta(days=2), "day")
    denied = [r for r in records if r.decision == "deny"]

    def top(key):
        return Counter(key(r) for r in denied)

    subjects = top(lambda r: r.subject)
    assert {d["subject"]: d["count"] for d in result.top_denied_subjects} == dict(subjects)
    counts = [d["count"] for d in result.top_denied_subjects]
    assert counts == sorted(counts, reverse=True)
    assert {(d["resource_type"], d["resource_id"]): d["count"]
            for d in result.top_denied_resources} == dict(
        top(lambda r: (r.resource_type, r.resource_id)))
    assert {d["caller"]: d["count"] for d in result.top_denied_callers} == dict(
        top(lambda r: r.caller))
    errors = Counter(e["code"] for r in records for e in r.errors)
    assert result.errors == [{"code": c, "count": n}
                             for c, n in sorted(errors.items(), key=lambda x: (-x[1], x[0]))]
    assert result.errors[0] == {"code": "token_expired", "count": 3}


def test_stats_take_the_other_filters_and_top_is_bounded(store, records):
    result = queries.stats(store, BASE, BASE + timedelta(days=1), "hour",
                           DecisionFilter(caller="svc-a"), top=2)
    mine = [r for r in records if r.caller == "svc-a"]
    assert sum(b["allow"] + b["deny"] for b in result.buckets) == len(mine)
    assert len(result.top_denied_subjects) <= 2


def test_stats_skip_checkpoints_and_non_array_errors(store, records):
    chain.append_checkpoint(store, 2)
    result = queries.stats(store, BASE - timedelta(days=1), BASE + timedelta(days=3650), "day")
    assert sum(result.totals.values()) == len(records)


def test_stats_default_to_the_last_day(store, records):
    now = BASE + timedelta(hours=3)
    result = queries.stats(store, bucket="hour", now=now)
    assert result.time_to == now and result.time_from == now - timedelta(days=1)
    assert sum(result.totals.values()) == len([r for r in records if r.time < now])


@pytest.mark.parametrize("kwargs,field", [
    ({"bucket": "week"}, "bucket"),
    ({"time_from": BASE, "time_to": BASE}, "from"),
    ({"time_from": BASE, "time_to": BASE + timedelta(days=30), "bucket": "minute"}, "bucket"),
])
def test_stats_refuse_bad_arguments(store, kwargs, field):
    with pytest.raises(RequestError) as info:
        queries.stats(store, **kwargs)
    assert info.value.field == field


def test_times_are_compared_as_instants_whatever_their_offset(store, records):
    other = timezone(timedelta(hours=2))
    start = (BASE + timedelta(minutes=17 * 5)).astimezone(other)
    page = queries.list_decisions(store, DecisionFilter(time_from=start), limit=1000)
    assert _ids(page) == expected(records, time_from=start)
