"""Spec §6 — the built-in functions, one test per row (and per error)."""

import pytest

from engine_support import outcome, run
from pdp.engine import runtime
from tests.complexity import assert_linear


# --------------------------------------------------------------------------- len

def test_len_of_string_counts_code_points():
    assert outcome('len(context.s) == 3', s="é€😀") is True


def test_len_of_list_and_object():
    assert outcome('len(context.l) == 2 and len(context.o) == 1', l=[1, 2], o={"a": 1}) is True


def test_len_of_anything_else_is_type_mismatch():
    for value in (1, None, True):
        assert outcome('len(context.x) == 0', x=value) == "type_mismatch"


# --------------------------------------------------------------------------- lower / upper

def test_lower_and_upper():
    assert outcome('lower(context.s) == "straße" and upper(context.s) == "STRASSE"', s="STRAßE") is True


def test_lower_of_a_non_string_is_type_mismatch():
    assert outcome('lower(context.x) == "1"', x=1) == "type_mismatch"
    assert outcome('upper(context.x) == "1"', x=["a"]) == "type_mismatch"


# --------------------------------------------------------------------------- starts_with / ends_with

def test_starts_with_and_ends_with():
    assert outcome('starts_with(context.s, "doc-") and ends_with(context.s, ".pdf")', s="doc-1.pdf") is True
    assert outcome('starts_with(context.s, "x")', s="doc") is False


def test_starts_with_needs_strings():
    assert outcome('starts_with(context.s, "a")', s=1) == "type_mismatch"
    assert outcome('ends_with("a", context.s)', s=None) == "type_mismatch"


# --------------------------------------------------------------------------- contains

def test_contains_is_a_substring_test_on_strings():
    assert outcome('contains(context.s, "ell")', s="hello") is True
    assert outcome('contains(context.s, "")', s="") is True
    assert outcome('contains(context.s, "x")', s="hello") is False


def test_contains_is_membership_on_lists_by_eq():
    assert outcome('contains(context.l, 1)', l=[1.0]) is True
    assert outcome('contains(context.l, 1)', l=[True]) is False
    assert outcome('contains(context.l, [1])', l=[[1]]) is True


def test_contains_wrong_types_are_type_mismatch():
    assert outcome('contains(context.s, 1)', s="1") == "type_mismatch"
    assert outcome('contains(context.o, "a")', o={"a": 1}) == "type_mismatch"


# --------------------------------------------------------------------------- contains_any / contains_all

def test_contains_any_is_true_when_the_lists_share_an_element():
    assert outcome('contains_any(context.a, ["x", "y"])', a=["q", "y"]) is True
    assert outcome('contains_any(context.a, ["x", "y"])', a=["q"]) is False
    assert outcome('contains_any(context.a, [])', a=["q"]) is False
    assert outcome('contains_any(context.a, [1])', a=[True]) is False
    assert outcome('contains_any(context.a, context.b)', a=[{"k": 1.0}], b=[{"k": 1}]) is True


def test_contains_all_is_true_when_the_first_list_holds_every_element_of_the_second():
    assert outcome('contains_all(context.a, ["x", "y"])', a=["y", "x", "z"]) is True
    assert outcome('contains_all(context.a, ["x", "y"])', a=["x"]) is False
    assert outcome('contains_all(context.a, [])', a=[]) is True
    assert outcome('contains_all(context.a, [0])', a=[False]) is False


def test_set_tests_on_large_lists_are_exact():
    big = [f"r{i}" for i in range(20_000)] + [1, None, [1]]
    assert run('contains_all(context.a, context.b)', a=big, b=list(reversed(big))) is True
    assert run('contains_any(context.a, context.b)', a=big, b=[True, [True], "zz"]) is False
    assert run('contains_any(context.a, context.b)', a=big, b=[1.0] * 1000) is True
    assert run('contains_all(context.a, context.b)', a=big, b=[[1], 1.0, None]) is True


@pytest.mark.parametrize("function", ["contains_all", "contains_any"])
def test_set_tests_on_large_lists_take_linear_time(function):
    # Lists and objects compare by value, so they cannot go into a hash set as they
    # are: a pairwise scan would be quadratic. The work must grow with a + b.
    def prepare(n):
        a = [[i] for i in range(n)] + [{"k": i} for i in range(n)]
        b = [[i] for i in reversed(range(n))] if function == "contains_all" else [["no"]] * n
        f = getattr(runtime, function)
        return lambda: f(a, b, None)
    assert_linear(prepare, 2_000)


def test_set_tests_need_two_lists():
    assert outcome('contains_any(context.a, ["x"])', a="x") == "type_mismatch"
    assert outcome('contains_all(["x"], context.a)', a={"x": 1}) == "type_mismatch"


# --------------------------------------------------------------------------- ip / cidr_contains

def test_ip_from_v4_and_v6_text():
    assert outcome('ip(context.a) == ip("10.1.2.3") and ip(context.b) == ip("2001:0db8::0001")',
                   a="10.1.2.3", b="2001:db8::1") is True


def test_ip_accepts_an_ip_value():
    assert outcome('ip(ip(context.a)) == ip(context.a)', a="10.1.2.3") is True


def test_ip_invalid_text_is_invalid_argument_and_non_text_type_mismatch():
    assert outcome('ip(context.a) == ip("10.0.0.1")', a="10.1.2") == "invalid_argument"
    assert outcome('ip(context.a) == ip("10.0.0.1")', a=167772161) == "type_mismatch"


def test_cidr_contains_with_ip_text_or_ip_value():
    assert outcome('cidr_contains("10.0.0.0/8", context.ip)', ip="10.1.2.3") is True
    assert outcome('cidr_contains("10.0.0.0/8", ip(context.ip))', ip="10.1.2.3") is True
    assert outcome('cidr_contains("10.0.0.0/8", context.ip)', ip="11.0.0.1") is False
    assert outcome('cidr_contains("2001:db8::/32", context.ip)', ip="2001:db8::5") is True


def test_cidr_contains_network_from_data():
    assert outcome('cidr_contains(data.nets[0], context.ip)', {"nets": ["192.168.0.0/16"]}, ip="192.168.4.4") is True
    assert outcome('cidr_contains(context.net, context.ip)', net="192.168.0.0/16", ip="192.168.4.4") is True


def test_cidr_contains_host_bits_may_be_set():
    assert outcome('cidr_contains("10.1.2.3/8", context.ip)', ip="10.200.0.1") is True


def test_cidr_contains_across_ip_versions_is_false():
    assert outcome('cidr_contains("10.0.0.0/8", context.ip)', ip="::ffff:10.0.0.1") is False
    assert outcome('cidr_contains("::/0", context.ip)', ip="10.0.0.1") is False


def test_cidr_contains_invalid_network_or_address_is_invalid_argument():
    assert outcome('cidr_contains(context.net, "10.0.0.1")', net="10.0.0.0/33") == "invalid_argument"
    assert outcome('cidr_contains("10.0.0.0/8", context.ip)', ip="10.0.0.256") == "invalid_argument"
    assert outcome('cidr_contains("10.0.0.0/8", context.ip)', ip=10) == "type_mismatch"
    assert outcome('cidr_contains(context.net, "10.0.0.1")', net=8) == "type_mismatch"


# --------------------------------------------------------------------------- time / duration

def test_time_from_rfc3339_text():
    assert outcome('time("2026-01-31T10:00:00+01:00") == time("2026-01-31T09:00:00Z")') is True
    assert outcome('time(context.t) < time("2026-01-31T09:00:00.000001Z")', t="2026-01-31T09:00:00Z") is True


def test_time_from_a_number_of_seconds():
    assert outcome('time(context.exp) == time("2023-11-14T22:13:20Z")', exp=1_700_000_000) is True
    assert outcome('time(context.exp) == time("1970-01-01T00:00:01.5Z")', exp=1.5) is True


def test_time_of_a_timestamp_is_itself():
    assert outcome("time(context.time) == context.time") is True


def test_time_invalid_is_invalid_argument():
    assert outcome('time(context.t) == context.time', t="2026-13-01T00:00:00Z") == "invalid_argument"
    assert outcome('time(context.t) == context.time', t="2026-01-01") == "invalid_argument"
    assert outcome('time(context.t) == context.time', t=1e300) == "invalid_argument"


def test_time_of_a_boolean_or_null_is_type_mismatch():
    assert outcome('time(context.t) == context.time', t=True) == "type_mismatch"
    assert outcome('time(context.t) == context.time', t=None) == "type_mismatch"


def test_duration_from_text():
    assert outcome('duration("90s") == duration("1m30s")') is True
    assert outcome('duration("1d") == duration("24h") and duration("1h30m") > duration("89m")') is True
    assert outcome('duration(context.d) == duration("500ms") + time("1970-01-01T00:00:00Z") - '
                   'time("1970-01-01T00:00:00Z")', d="500ms") == "type_mismatch"
    assert outcome('duration(context.d) < duration("1s")', d="500ms") is True


@pytest.mark.parametrize("text", ["", "1", "1.5h", "1m1h", "1h1h", "-1s", "1 h", "1H", "1w", "PT1H"])
def test_duration_invalid_text_is_invalid_argument(text):
    assert outcome('duration(context.d) > duration("0s")', d=text) == "invalid_argument"


def test_duration_of_a_number_is_type_mismatch():
    assert outcome('duration(context.d) > duration("0s")', d=60) == "type_mismatch"


# --------------------------------------------------------------------------- hour / weekday

def test_hour_and_weekday_in_utc():
    # 2026-03-02T10:00:00Z is a Monday
    assert outcome("hour(context.time) == 10 and weekday(context.time) == 1") is True
    assert outcome('weekday(time("2026-03-08T23:59:59Z")) == 7') is True


def test_hour_and_weekday_in_a_named_zone():
    assert outcome('hour(context.time, "Europe/Paris") == 11') is True
    assert outcome('hour(context.time, "America/New_York") == 5') is True
    assert outcome('weekday(time("2026-03-02T02:00:00Z"), context.tz) == 7', tz="America/Los_Angeles") is True


def test_hour_and_weekday_need_a_timestamp():
    assert outcome('hour(context.t) == 10', t="2026-03-02T10:00:00Z") == "type_mismatch"
    assert outcome('weekday(context.t) == 1', t=0) == "type_mismatch"


def test_hour_with_an_unknown_zone_is_invalid_argument():
    assert outcome('hour(context.time, context.tz) == 1', tz="Mars/Olympus") == "invalid_argument"
    assert outcome('hour(context.time, context.tz) == 1', tz="../../etc/passwd") == "invalid_argument"
    assert outcome('hour(context.time, context.tz) == 1', tz=1) == "type_mismatch"


def test_set_tests_on_large_lists_of_lists_and_objects_compare_by_value():
    # Past 256 pairs the set tests hash; the structural keys must mean exactly `==`.
    padding = [[f"pad{i}"] for i in range(300)]
    a = padding + [[1, {"k": 2.0, "t": [None]}], {"x": [True]}]
    assert run('contains_all(context.a, context.b)', a=a, b=[[1.0, {"t": [None], "k": 2}]]) is True
    assert run('contains_any(context.a, context.b)', a=a, b=[{"x": [1]}]) is False       # true is not 1
    assert run('contains_any(context.a, context.b)', a=a, b=[{"x": [True], "y": 1}]) is False
    assert run('contains_any(context.a, context.b)', a=a, b=[[{"k": 2, "t": [None]}, 1]]) is False  # order counts
    assert run('contains_all(context.a, context.b)', a=a, b=[{"x": [True]}, ["pad7"]]) is True
