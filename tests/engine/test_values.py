"""Spec §3 — the derived values: timestamp, duration, ip (pdp.lang.values)."""

import ipaddress
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pdp.lang.values import (
    Duration, Timestamp, check_zone, parse_cidr, parse_duration, parse_ip, parse_timestamp,
    timestamp_from_seconds, type_name,
)


# --------------------------------------------------------------------------- timestamps

@pytest.mark.parametrize("text,iso", [
    ("2026-01-31T09:00:00Z", "2026-01-31T09:00:00Z"),
    ("2026-01-31T10:00:00+01:00", "2026-01-31T09:00:00Z"),
    ("2026-01-31T09:00:00.25Z", "2026-01-31T09:00:00.25Z"),
    ("2026-01-31T09:00:00.123456789Z", "2026-01-31T09:00:00.123456Z"),   # past microseconds: dropped
    ("2026-01-31t09:00:00z", "2026-01-31T09:00:00Z"),
    ("2026-01-31 09:00:00-00:30", "2026-01-31T09:30:00Z"),
    ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"),
    ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
])
def test_parse_timestamp_rfc3339(text, iso):
    assert parse_timestamp(text).isoformat() == iso


@pytest.mark.parametrize("text", [
    "2026-01-31", "2026-01-31T09:00:00", "2026-01-31T09:00Z", "2026-02-30T00:00:00Z",
    "2026-01-31T24:00:00Z", "2026-01-31T23:59:60Z", "2026-01-31T09:00:00+24:00",
    "0001-01-01T00:00:00+01:00", "yesterday", "", "２０２６-01-31T09:00:00Z", "2026-01-31T09:00:00.Z",
])
def test_parse_timestamp_refuses_anything_else_with_a_message(text):
    with pytest.raises(ValueError) as info:
        parse_timestamp(text)
    assert "timestamp" in str(info.value)


def test_parse_timestamp_refuses_non_text():
    with pytest.raises(ValueError):
        parse_timestamp(5)


def test_timestamp_from_seconds():
    assert timestamp_from_seconds(0).isoformat() == "1970-01-01T00:00:00Z"
    assert timestamp_from_seconds(1_700_000_000) == parse_timestamp("2023-11-14T22:13:20Z")
    assert timestamp_from_seconds(-1.5).isoformat() == "1969-12-31T23:59:58.5Z"
    for bad in (True, None, "1", float("nan"), float("inf"), 1e13, -10**13):
        with pytest.raises(ValueError):
            timestamp_from_seconds(bad)


def test_timestamps_are_instants_ordered_hashable_and_immutable():
    a = parse_timestamp("2026-01-01T01:00:00+01:00")
    b = parse_timestamp("2026-01-01T00:00:00Z")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert b < parse_timestamp("2026-01-01T00:00:00.000001Z")
    assert a != b.micros and not (a == "2026-01-01T00:00:00Z")
    with pytest.raises(TypeError):
        a < 1
    with pytest.raises(AttributeError):
        a.micros = 0


def test_timestamp_datetime_round_trip():
    dt = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=timezone(timedelta(hours=-3)))
    t = Timestamp.from_datetime(dt)
    assert t.to_datetime() == dt
    with pytest.raises(ValueError):
        Timestamp.from_datetime(datetime(2026, 1, 1))


@given(st.datetimes(timezones=st.just(timezone.utc)))
def test_parse_timestamp_agrees_with_datetime(dt):
    text = dt.strftime("%Y-%m-%dT%H:%M:%S") if dt.year >= 1000 else None
    if text is None:
        return
    text += f".{dt.microsecond:06d}Z"
    assert parse_timestamp(text).to_datetime() == dt
    assert parse_timestamp(parse_timestamp(text).isoformat()) == parse_timestamp(text)


# --------------------------------------------------------------------------- durations

@pytest.mark.parametrize("text,micros", [
    ("90s", 90_000_000), ("15m", 900_000_000), ("2h", 7_200_000_000), ("1d", 86_400_000_000),
    ("1h30m", 5_400_000_000), ("500ms", 500_000), ("1d2h3m4s5ms", 93_784_005_000), ("0s", 0),
])
def test_parse_duration(text, micros):
    assert parse_duration(text).micros == micros


@pytest.mark.parametrize("text", ["", "1", "h", "1.5h", "1m1h", "1h1h", "-1s", "+1s", " 1s", "1s ",
                                  "1H", "1w", "1us", "PT1H", "1h 30m", "١s", "9" * 20 + "d"])
def test_parse_duration_refuses_anything_else(text):
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert "duration" in str(info.value)


def test_durations_are_ordered_hashable_and_print_as_written():
    assert parse_duration("90s") == parse_duration("1m30s")
    assert hash(parse_duration("1h")) == hash(parse_duration("60m"))
    assert parse_duration("59m") < parse_duration("1h")
    assert str(parse_duration("1h30m")) == "1h30m" and str(Duration(-1_500_000)) == "-1s500ms"
    assert Duration(1) != Timestamp(1)


def test_timestamp_arithmetic():
    t = parse_timestamp("2026-01-01T00:00:00Z")
    assert t + parse_duration("1d") == parse_timestamp("2026-01-02T00:00:00Z")
    assert (t + parse_duration("1h")) - t == parse_duration("1h")


# --------------------------------------------------------------------------- ip, cidr, zones

def test_parse_ip():
    assert parse_ip("10.1.2.3") == ipaddress.IPv4Address("10.1.2.3")
    assert parse_ip("2001:db8::1") == ipaddress.IPv6Address("2001:db8::1")
    for bad in ("10.1.2", "10.01.2.3", "", "x", 167772161, None):
        with pytest.raises(ValueError):
            parse_ip(bad)


def test_parse_cidr_not_strict():
    assert parse_cidr("10.1.2.3/8") == ipaddress.ip_network("10.0.0.0/8")
    assert parse_cidr("2001:db8::/32").version == 6
    for bad in ("10.0.0.0/33", "nope", "", 8):
        with pytest.raises(ValueError):
            parse_cidr(bad)


def test_check_zone():
    assert str(check_zone("Europe/Paris")) == "Europe/Paris"
    assert str(check_zone("UTC")) == "UTC"
    for bad in ("Mars/Olympus", "../../etc/passwd", "/etc/localtime", "Europe/../UTC", "", "a" * 100,
                "Europe\\Paris", ".hidden", 5):
        with pytest.raises(ValueError):
            check_zone(bad)


def test_type_names_are_the_languages():
    assert [type_name(v) for v in ("a", 1, 1.5, True, None, [], {}, Timestamp(0), Duration(0),
                                   parse_ip("::1"))] == \
        ["string", "int", "float", "bool", "null", "list", "object", "timestamp", "duration", "ip"]
