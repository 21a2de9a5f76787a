"""The derived value types of the language (spec §3): timestamp, duration, ip.

Pure and small. A :class:`Timestamp` is an instant in UTC with microsecond
precision, a :class:`Duration` a signed number of microseconds; both are immutable,
hashable and ordered among their own kind only. ip values are the standard library's
``ipaddress.IPv4Address`` / ``IPv6Address``.

The ``parse_*`` functions turn author or request text into values and raise
``ValueError`` with a message an author understands. The checker uses them to
validate literal arguments at compile time, the runtime to evaluate calls.
"""

from __future__ import annotations

import ipaddress
import math
import re
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "Timestamp", "Duration", "parse_timestamp", "timestamp_from_seconds",
    "parse_duration", "parse_ip", "parse_cidr", "check_zone", "type_name",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

#: The instants a timestamp may hold: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z.
MIN_MICROS = (datetime(1, 1, 1, tzinfo=timezone.utc) - _EPOCH) // _US
MAX_MICROS = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc) - _EPOCH) // _US
#: The longest duration: the distance between the first and the last timestamp.
MAX_DURATION_MICROS = MAX_MICROS - MIN_MICROS


def _show(text: str, limit: int = 60) -> str:
    """``text`` quoted for a message, cut short when long."""
    if len(text) > limit:
        text = text[:limit] + "…"
    return repr(text)


# --------------------------------------------------------------------------- timestamp

class Timestamp:
    """An instant (UTC, microseconds since 1970-01-01T00:00:00Z)."""

    __slots__ = ("micros",)

    def __init__(self, micros: int):
        if micros.__class__ is not int:
            raise TypeError("a timestamp is a whole number of microseconds")
        if not MIN_MICROS <= micros <= MAX_MICROS:
            raise ValueError("timestamp out of range (years 1 to 9999)")
        object.__setattr__(self, "micros", micros)

    def __setattr__(self, name, value):
        raise AttributeError("timestamps are immutable")

    @classmethod
    def from_datetime(cls, dt: datetime) -> Timestamp:
        if dt.tzinfo is None or dt.utcoffset() is None:
            raise ValueError("a timestamp needs a datetime with a time zone")
        return cls((dt - _EPOCH) // _US)

    def to_datetime(self, tz=timezone.utc) -> datetime:
        """The instant as an aware ``datetime`` in ``tz`` (UTC by default)."""
        dt = _EPOCH + timedelta(microseconds=self.micros)
        return dt if tz is timezone.utc else dt.astimezone(tz)

    def isoformat(self) -> str:
        """RFC 3339 in UTC: ``2026-01-31T09:00:00Z`` (fraction only when not zero)."""
        dt = self.to_datetime()
        # isoformat: four-digit years (strftime's %Y is not padded on every libc),
        # and about half the time of strftime; [:19] drops the "+00:00".
        text = dt.isoformat(timespec="seconds")[:19]
        if dt.microsecond:
            text += f".{dt.microsecond:06d}".rstrip("0")
        return text + "Z"

    def __eq__(self, other):
        if other.__class__ is Timestamp:
            return self.micros == other.micros
        return NotImplemented

    def __ne__(self, other):
        if other.__class__ is Timestamp:
            return self.micros != other.micros
        return NotImplemented

    def __lt__(self, other):
        if other.__class__ is Timestamp:
            return self.micros < other.micros
        return NotImplemented

    def __le__(self, other):
        if other.__class__ is Timestamp:
            return self.micros <= other.micros
        return NotImplemented

    def __gt__(self, other):
        if other.__class__ is Timestamp:
            return self.micros > other.micros
        return NotImplemented

    def __ge__(self, other):
        if other.__class__ is Timestamp:
            return self.micros >= other.micros
        return NotImplemented

    def __hash__(self):
        return hash((Timestamp, self.micros))

    def __add__(self, other):
        if other.__class__ is Duration:
            return Timestamp(self.micros + other.micros)
        return NotImplemented

    def __sub__(self, other):
        if other.__class__ is Duration:
            return Timestamp(self.micros - other.micros)
        if other.__class__ is Timestamp:
            return Duration(self.micros - other.micros)
        return NotImplemented

    def __reduce__(self):
        return (Timestamp, (self.micros,))

    def __repr__(self):
        return f"Timestamp({self.isoformat()!r})"

    __str__ = isoformat


_TIMESTAMP_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))")


def parse_timestamp(s: str) -> Timestamp:
    """A timestamp from RFC 3339 text: ``2026-01-31T09:00:00Z``,
    ``2026-01-31T10:00:00.250+01:00``. Digits past microseconds are dropped."""
    if not isinstance(s, str):
        raise ValueError(f"a timestamp is written as text, not {type_name(s)}")
    return _parse_timestamp(s)


@lru_cache(maxsize=1024)
def _parse_timestamp(s: str) -> Timestamp:
    m = _TIMESTAMP_RE.fullmatch(s) if len(s) <= 64 else None
    if m is None:
        raise ValueError(f"invalid timestamp {_show(s)}: expected RFC 3339 text "
                         f"such as \"2026-01-31T09:00:00Z\" or \"2026-01-31T10:00:00+01:00\"")
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    frac = m.group(7)
    micro = int((frac + "000000")[:6]) if frac else 0
    if m.group(8):
        offset = 0
    else:
        oh, om = int(m.group(10)), int(m.group(11))
        if oh > 23 or om > 59:
            raise ValueError(f"invalid timestamp {_show(s)}: the offset must be at most 23:59")
        offset = (oh * 60 + om) * (1 if m.group(9) == "+" else -1)
    if hour > 23 or minute > 59 or second > 59:
        why = "leap seconds are not supported" if second == 60 and hour <= 23 and minute <= 59 \
            else "the time of day must be at most 23:59:59"
        raise ValueError(f"invalid timestamp {_show(s)}: {why}")
    try:
        days = date(year, month, day).toordinal() - _EPOCH_ORDINAL
    except ValueError as exc:
        raise ValueError(f"invalid timestamp {_show(s)}: {exc}") from None
    micros = (((days * 24 + hour) * 60 + minute - offset) * 60 + second) * 1_000_000 + micro
    if not MIN_MICROS <= micros <= MAX_MICROS:
        raise ValueError(f"invalid timestamp {_show(s)}: not a time between the years 1 and 9999 (UTC)")
    return Timestamp(micros)


def timestamp_from_seconds(n) -> Timestamp:
    """A timestamp from a number of seconds since 1970-01-01T00:00:00Z (int or float)."""
    if n.__class__ is bool or not isinstance(n, (int, float)):
        raise ValueError(f"a number of seconds is needed, not {type_name(n)}")
    if isinstance(n, float):
        if not math.isfinite(n) or abs(n) > 1e12:
            raise ValueError(f"{n!r} seconds is not a time between the years 1 and 9999")
        micros = round(n * 1_000_000)
    else:
        if abs(n) > 10**12:
            raise ValueError(f"{n} seconds is not a time between the years 1 and 9999")
        micros = int(n) * 1_000_000
    if not MIN_MICROS <= micros <= MAX_MICROS:
        raise ValueError(f"{n!r} seconds is not a time between the years 1 and 9999")
    return Timestamp(micros)


# --------------------------------------------------------------------------- duration

class Duration:
    """A signed length of time in microseconds."""

    __slots__ = ("micros",)

    def __init__(self, micros: int):
        if micros.__class__ is not int:
            raise TypeError("a duration is a whole number of microseconds")
        if abs(micros) > MAX_DURATION_MICROS:
            raise ValueError("duration out of range (at most 9999 years)")
        object.__setattr__(self, "micros", micros)

    def __setattr__(self, name, value):
        raise AttributeError("durations are immutable")

    def __eq__(self, other):
        if other.__class__ is Duration:
            return self.micros == other.micros
        return NotImplemented

    def __ne__(self, other):
        if other.__class__ is Duration:
            return self.micros != other.micros
        return NotImplemented

    def __lt__(self, other):
        if other.__class__ is Duration:
            return self.micros < other.micros
        return NotImplemented

    def __le__(self, other):
        if other.__class__ is Duration:
            return self.micros <= other.micros
        return NotImplemented

    def __gt__(self, other):
        if other.__class__ is Duration:
            return self.micros > other.micros
        return NotImplemented

    def __ge__(self, other):
        if other.__class__ is Duration:
            return self.micros >= other.micros
        return NotImplemented

    def __hash__(self):
        return hash((Duration, self.micros))

    def __reduce__(self):
        return (Duration, (self.micros,))

    def to_timedelta(self) -> timedelta:
        return timedelta(microseconds=self.micros)

    def __str__(self):
        """``1h30m``, ``500ms``, ``-2d``; a rest below a millisecond shows as ``us``."""
        n = self.micros
        if n == 0:
            return "0s"
        sign, n = ("-", -n) if n < 0 else ("", n)
        out = []
        for unit, size in _UNITS:
            q, n = divmod(n, size)
            if q:
                out.append(f"{q}{unit}")
        if n:
            out.append(f"{n}us")
        return sign + "".join(out)

    def __repr__(self):
        return f"Duration({str(self)!r})"


_UNITS = (("d", 86_400_000_000), ("h", 3_600_000_000), ("m", 60_000_000),
          ("s", 1_000_000), ("ms", 1_000))
_DURATION_RE = re.compile(
    r"(?:([0-9]{1,12})d)?(?:([0-9]{1,12})h)?(?:([0-9]{1,12})m)?"
    r"(?:([0-9]{1,12})s)?(?:([0-9]{1,12})ms)?")


def parse_duration(s: str) -> Duration:
    """A duration from ``90s``, ``15m``, ``2h``, ``1d``, ``1h30m``, ``500ms``: whole
    numbers with units ``d h m s ms``, largest unit first, each at most once."""
    if not isinstance(s, str):
        raise ValueError(f"a duration is written as text, not {type_name(s)}")
    m = _DURATION_RE.fullmatch(s) if s and len(s) <= 80 else None
    if m is None:
        raise ValueError(f"invalid duration {_show(s)}: expected whole numbers with units "
                         f"d, h, m, s or ms, largest first, such as \"90s\", \"15m\" or \"1h30m\"")
    micros = sum(int(g) * size for g, (_, size) in zip(m.groups(), _UNITS) if g)
    if micros > MAX_DURATION_MICROS:
        raise ValueError(f"invalid duration {_show(s)}: longer than 9999 years")
    return Duration(micros)


# --------------------------------------------------------------------------- ip

def parse_ip(s) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An ip value from ``"10.1.2.3"`` or ``"2001:db8::1"``."""
    if not isinstance(s, str):
        raise ValueError(f"an ip address is written as text, not {type_name(s)}")
    try:
        return ipaddress.ip_address(s)
    except ValueError:
        raise ValueError(f"invalid ip address {_show(s)}: expected an address such as "
                         f"\"10.1.2.3\" or \"2001:db8::1\"") from None


def parse_cidr(s) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A network from ``"10.0.0.0/8"`` (host bits may be set: ``"10.1.2.3/8"`` is ``10.0.0.0/8``)."""
    if not isinstance(s, str):
        raise ValueError(f"a network is written as text, not {type_name(s)}")
    try:
        return ipaddress.ip_network(s, strict=False)
    except ValueError:
        raise ValueError(f"invalid network {_show(s)}: expected CIDR notation such as "
                         f"\"10.0.0.0/8\" or \"2001:db8::/32\"") from None


# --------------------------------------------------------------------------- time zones

_ZONE_RE = re.compile(r"[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)*")


def check_zone(name) -> ZoneInfo:
    """The IANA time zone ``name`` (``"Europe/Paris"``, ``"UTC"``)."""
    if not isinstance(name, str):
        raise ValueError(f"a time zone is written as text, not {type_name(name)}")
    if (len(name) > 64 or not _ZONE_RE.fullmatch(name)
            or any(part.startswith((".", "-")) for part in name.split("/"))):
        raise ValueError(f"invalid time zone {_show(name)}: expected an IANA zone name "
                         f"such as \"Europe/Paris\" or \"UTC\"")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {_show(name)}: expected an IANA zone name "
                         f"such as \"Europe/Paris\" or \"UTC\"") from None


# --------------------------------------------------------------------------- names

_TYPE_NAMES = {
    str: "string", int: "int", float: "float", bool: "bool", type(None): "null",
    list: "list", dict: "object", Timestamp: "timestamp", Duration: "duration",
    ipaddress.IPv4Address: "ip", ipaddress.IPv6Address: "ip",
}


def type_name(value) -> str:
    """The language's name for the type of ``value``: ``string``, ``int``, ``object`` …"""
    name = _TYPE_NAMES.get(value.__class__)
    if name is not None:
        return name
    for cls in (bool, str, int, float, list, dict):
        if isinstance(value, cls):
            return _TYPE_NAMES[cls]
    return type(value).__name__
