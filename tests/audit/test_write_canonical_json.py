"""The decision log's canonical JSON is the ``json`` module's text (sorted keys,
compact, UTF-8, no NaN) whichever encoder writes it: orjson where it writes the
same bytes (about five times faster), the ``json`` module where it would not (a
float under 1e-4, an integer beyond 64 bits, nesting past 254 levels) or cannot
(a lone surrogate). A hash made when a record was written must be the hash that
verification computes later, so an orjson release that changed a byte of its
output must fail here."""

from __future__ import annotations

import json
import math
import random
import struct

import orjson
import pytest

from pdp.audit.record import EXACT, NOT_PLAIN, PLAIN, _plainness, canonical_json


def stdlib(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def fast(value) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def test_orjson_writes_every_float_from_1e_minus_4_up_as_repr_does():
    rng = random.Random(11)
    checked = 0
    edges = [0.0, -0.0, 1e-4, -1e-4, 0.00010000000000000002, 1e16, 9999999999999998.0,
             1e15, 1e22, 1e300, 1.7976931348623157e308, 0.1, 0.2 + 0.1, 1 / 3, 123.0,
             2.0 ** 53, 2.0 ** 53 + 2]
    values = edges + [rng.uniform(-1, 1) * 10 ** rng.randint(-4, 308) for _ in range(300_000)]
    values += [struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0]
               for _ in range(700_000)]
    for value in values:
        if not math.isfinite(value) or (value != 0 and abs(value) < 1e-4):
            continue
        assert _plainness(value) == EXACT
        assert fast(value) == stdlib(value), repr(value)
        checked += 1
    assert checked > 500_000


def test_smaller_floats_are_written_by_the_json_module():
    for value in (1e-5, 2.5e-7, -3e-300, 5e-324, 9.99e-5):
        assert _plainness(value) == PLAIN and _plainness({"a": [value]}) == PLAIN
        assert canonical_json({"a": [value]}) == stdlib({"a": [value]})
    assert fast(1e-5) == b"0.00001" and fast(2.5e-7) == b"2.5e-7"     # why they are not EXACT


def test_orjson_escapes_and_sorts_text_as_the_json_module_does():
    rng = random.Random(5)
    every_bmp = "".join(chr(c) for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF)
    assert fast(every_bmp) == stdlib(every_bmp)
    astral = "".join(chr(rng.randrange(0x10000, 0x110000)) for _ in range(5000))
    assert fast(astral) == stdlib(astral)
    alphabet = ["a", "B", "", "é", "\x00", "\x1f", '"', "\\", "\u2028", "\ue000", "\uffff",
                "\U0001f600", "\U0010ffff", "~", "\x7f"]
    for _ in range(3000):
        value = {"".join(rng.choices(alphabet, k=rng.randrange(4))): rng.randrange(-5, 5)
                 for _ in range(rng.randrange(8))}
        assert fast(value) == stdlib(value), value
        assert canonical_json(value) == stdlib(value)


def test_random_plain_documents_are_the_same_bytes():
    rng = random.Random(9)

    def value(depth=0):
        kind = rng.randrange(8 if depth < 4 else 5)
        if kind == 0:
            return rng.choice([None, True, False])
        if kind == 1:
            return rng.randrange(-2 ** 63, 2 ** 64)
        if kind == 2:
            return rng.uniform(-1e6, 1e6)
        if kind in (3, 4):
            return "".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(0, 0x3000)]))
                           for _ in range(rng.randrange(6)))
        if kind == 5:
            return [value(depth + 1) for _ in range(rng.randrange(5))]
        return {str(value(depth + 1)): value(depth + 1) for _ in range(rng.randrange(5))}

    for _ in range(5000):
        doc = {"k": value()}
        try:
            expected = stdlib(doc)
        except UnicodeEncodeError:       # a lone surrogate (0xD800-0xDFFF drawn)
            continue
        assert canonical_json(doc) == expected
        if _plainness(doc) == EXACT:
            assert fast(doc) == expected


@pytest.mark.parametrize("value", [2 ** 64, -2 ** 63 - 1, 10 ** 30,
                                   {"deep": json.loads("[" * 300 + "]" * 300)}])
def test_what_orjson_refuses_is_written_by_the_json_module(value):
    assert _plainness(value) == EXACT
    with pytest.raises(TypeError):
        fast(value)
    assert canonical_json(value) == stdlib(value)


def test_values_that_are_not_plain_json_are_converted_first():
    assert _plainness((1, 2)) == NOT_PLAIN and _plainness({1: "a"}) == NOT_PLAIN
    assert _plainness(math.nan) == NOT_PLAIN and _plainness([math.inf]) == NOT_PLAIN
    assert canonical_json({"t": (1, 2), "n": math.nan, 3: "x"}) == \
        b'{"3":"x","n":"nan","t":[1,2]}'
