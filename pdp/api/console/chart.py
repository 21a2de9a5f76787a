"""The overview's chart: allow and deny per time bucket as an inline SVG, drawn on
the server (the console runs no script).

:func:`fill_buckets` turns the buckets of :func:`pdp.audit.queries.stats` (only
the periods with decisions) into one :class:`Bucket` per period of the window,
zeros included; :func:`decision_chart` draws them as two bars per bucket (class
``allow`` and ``deny``) over a y axis with round ticks (:func:`nice_ticks`) and x
labels in UTC. Each bucket is a ``<g class="bucket">`` whose ``<title>`` (the
browser's tooltip) gives its period and counts.

The SVG is built from :class:`Element` nodes, whose every attribute value and
text is escaped, and carries no ``style`` attribute: colours come from classes
styled in ``console.css`` (the console's CSP allows no inline style).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from markupsafe import Markup, escape

__all__ = ["Bucket", "Element", "BUCKET_SPAN", "decision_chart", "fill_buckets",
           "floor_time", "nice_ticks"]

#: Length of each bucket size :func:`pdp.audit.queries.stats` knows.
BUCKET_SPAN = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1),
               "day": timedelta(days=1)}
#: Label spacing candidates, in buckets, smallest first.
_LABEL_STEPS = {"minute": (1, 2, 5, 10, 15, 30, 60, 120, 240, 360, 720, 1440),
                "hour": (1, 2, 3, 6, 12, 24, 48, 168),
                "day": (1, 2, 7, 14, 28)}

# Geometry of the drawing (viewBox units; the SVG scales to its container).
WIDTH, HEIGHT = 960, 280
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 14, 44
MAX_X_LABELS = 8


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime
    allow: int = 0
    deny: int = 0


# --------------------------------------------------------------------------- data

def floor_time(value: datetime, bucket: str) -> datetime:
    """``value`` (aware) truncated to the start of its bucket, in UTC."""
    value = value.astimezone(timezone.utc)
    if bucket == "minute":
        return value.replace(second=0, microsecond=0)
    if bucket == "hour":
        return value.replace(minute=0, second=0, microsecond=0)
    if bucket == "day":
        return value.replace(hour=0, minute=0, second=0, microsecond=0)
    raise ValueError(f"unknown bucket {bucket!r}")


def _parse(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(timezone.utc)


def fill_buckets(rows: Iterable[Mapping[str, Any]], time_from: datetime, time_to: datetime,
                 bucket: str) -> list[Bucket]:
    """One bucket per period from ``time_from`` (floored to the bucket) up to
    ``time_to`` (exclusive), with the counts of ``rows`` (``{"start", "allow",
    "deny"}`` as :func:`~pdp.audit.queries.stats` gives them) and zeros elsewhere."""
    span = BUCKET_SPAN[bucket]
    counts = {_parse(r["start"]): (int(r.get("allow") or 0), int(r.get("deny") or 0))
              for r in rows}
    out = []
    at = floor_time(time_from, bucket)
    while at < time_to:
        allow, deny = counts.get(at, (0, 0))
        out.append(Bucket(at, allow, deny))
        at += span
    return out


def nice_ticks(maximum: int, target: int = 4) -> list[int]:
    """Round, evenly spaced whole-number ticks from 0 up to at least ``maximum``
    (about ``target`` intervals; steps of 1, 2 or 5 times a power of ten)."""
    if maximum <= 0:
        return [0, 1]
    raw = maximum / max(target, 1)
    step = 1
    if raw > 1:
        magnitude = 10 ** math.floor(math.log10(raw))
        step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    top = math.ceil(maximum / step) * step
    return list(range(0, top + 1, step))


# --------------------------------------------------------------------------- SVG nodes

@dataclass
class Element:
    """An SVG element: attribute values and text children are escaped on render."""

    tag: str
    attrs: dict[str, Any] = field(default_factory=dict)
    children: list[Element | str] = field(default_factory=list)

    def add(self, *children: Element | str) -> Element:
        self.children.extend(children)
        return self

    def render(self) -> str:
        attrs = "".join(f' {name}="{escape(_fmt(value))}"'
                        for name, value in self.attrs.items() if value is not None)
        if not self.children:
            return f"<{self.tag}{attrs}/>"
        inner = "".join(c.render() if isinstance(c, Element) else str(escape(c))
                        for c in self.children)
        return f"<{self.tag}{attrs}>{inner}</{self.tag}>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.2f}".rstrip("0").rstrip(".")
        return text if text not in ("", "-0") else "0"
    return str(value)


def el(tag: str, children: Sequence[Element | str] = (), **attrs: Any) -> Element:
    """``el("rect", x=1, class_="allow")`` — trailing ``_`` dropped, ``_`` → ``-``."""
    return Element(tag, {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()},
                   list(children))


# --------------------------------------------------------------------------- drawing

def _utc_label(at: datetime, step: timedelta, multi_day: bool) -> str:
    if step >= timedelta(days=1) or (multi_day and at.hour == 0 and at.minute == 0):
        return at.strftime("%d %b")
    return at.strftime("%H:%M")


def _period(start: datetime, span: timedelta) -> str:
    end = start + span
    if span >= timedelta(days=1):
        return f"{start:%Y-%m-%d} (UTC)"
    return f"{start:%Y-%m-%d %H:%M}–{end:%H:%M} UTC"


def _label_step(buckets: Sequence[Bucket], bucket: str) -> int:
    for step in _LABEL_STEPS[bucket]:
        if len(buckets) / step <= MAX_X_LABELS:
            return step
    return max(1, math.ceil(len(buckets) / MAX_X_LABELS))


def decision_chart(buckets: Sequence[Bucket], bucket: str, *, title: str) -> Markup:
    """The SVG of ``buckets`` (from :func:`fill_buckets`); ``title`` names the chart."""
    span = BUCKET_SPAN[bucket]
    n = max(len(buckets), 1)
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    base = TOP + plot_h
    ticks = nice_ticks(max((max(b.allow, b.deny) for b in buckets), default=0))
    top_value = ticks[-1]

    def y(value: int) -> float:
        return base - plot_h * value / top_value

    svg = el("svg", xmlns="http://www.w3.org/2000/svg", viewBox=f"0 0 {WIDTH} {HEIGHT}",
             role="img", aria_labelledby="decision-chart-title", class_="decision-chart",
             data_buckets=len(buckets), data_bucket=bucket)
    svg.add(el("title", [title], id="decision-chart-title"))

    grid = el("g", class_="y-axis")
    for value in ticks:
        grid.add(el("line", x1=LEFT, x2=WIDTH - RIGHT, y1=y(value), y2=y(value),
                    class_="grid-line" if value else "baseline"),
                 el("text", [f"{value:,}"], x=LEFT - 6, y=y(value) + 4, text_anchor="end",
                    class_="tick-label"))
    grid.add(el("text", ["decisions"], x=14, y=TOP + plot_h / 2, text_anchor="middle",
                transform=f"rotate(-90 14 {_fmt(TOP + plot_h / 2)})", class_="axis-title"))
    svg.add(grid)

    slot = plot_w / n
    bar = slot * 0.4
    bars = el("g", class_="bars")
    for i, b in enumerate(buckets):
        x0 = LEFT + i * slot
        bars.add(el("g", [
            el("title", [f"{_period(b.start, span)}: {b.allow:,} allow, {b.deny:,} deny"]),
            el("rect", x=x0, y=TOP, width=slot, height=plot_h, class_="hit"),
            el("rect", x=x0 + slot * 0.1, y=y(b.allow), width=bar, height=base - y(b.allow),
               class_="allow"),
            el("rect", x=x0 + slot * 0.5, y=y(b.deny), width=bar, height=base - y(b.deny),
               class_="deny"),
        ], class_="bucket", data_start=b.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            data_allow=b.allow, data_deny=b.deny))
    svg.add(bars)

    axis = el("g", class_="x-axis")
    step = _label_step(buckets, bucket)
    multi_day = bool(buckets) and buckets[0].start.date() != buckets[-1].start.date()
    units = span // BUCKET_SPAN["minute"]
    for i, b in enumerate(buckets):
        if (int(b.start.timestamp()) // 60 // units) % step:
            continue
        x = LEFT + i * slot
        axis.add(el("line", x1=x, x2=x, y1=base, y2=base + 5, class_="tick"),
                 el("text", [_utc_label(b.start, span * step, multi_day)], x=x, y=base + 18,
                    text_anchor="middle", class_="tick-label"))
    axis.add(el("text", ["time (UTC)"], x=LEFT + plot_w / 2, y=HEIGHT - 6,
                text_anchor="middle", class_="axis-title"))
    svg.add(axis)
    return Markup(svg.render())
