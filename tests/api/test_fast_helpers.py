"""The cheaper forms of per-request work give exactly what the plain forms gave:
log times, request ids, the strict JSON reader's skipped walk, PyJWT's segment
check, decision ids."""

from __future__ import annotations

import json
import random
import time
import uuid
from datetime import datetime, timezone

import jwt.api_jws
import pytest

from pdp.api.json import parse_object
from pdp.api.logging import _log_time, new_request_id, request_id_of
from pdp.api.tokens import _FastJWS, _pyjws
from pdp.errors import RequestError
from pdp.service.decisions import new_decision_id


def test_log_times_are_those_of_datetime_isoformat():
    def reference(created):
        return (datetime.fromtimestamp(created, timezone.utc)
                .isoformat(timespec="milliseconds").replace("+00:00", "Z"))

    rng = random.Random(3)
    now = time.time()
    edges = [0.9999995, 0.0000005, 0.9994999, 0.9995, 0.0015, 0.999999, 0.4999995, 0.0]
    for i in range(50_000):
        created = (now + rng.uniform(-1e6, 1e6) if i % 2
                   else float(int(now) + i) + rng.choice(edges))
        assert _log_time(created) == reference(created), created
    assert _log_time(-1.5) == reference(-1.5)


def test_request_ids_look_like_uuid4_hex_and_a_sane_given_one_is_kept():
    for _ in range(2000):
        rid = new_request_id()
        assert len(rid) == 32 and uuid.UUID(rid).version == 4
        assert uuid.UUID(rid).variant == uuid.RFC_4122
    assert request_id_of("abc-1") == "abc-1"
    assert request_id_of("bad id") != "bad id" and len(request_id_of("bad id")) == 32
    assert len(request_id_of(None)) == 32


def test_decision_ids_are_uuid7_text():
    for _ in range(2000):
        text = new_decision_id()
        assert str(uuid.UUID(text)) == text and uuid.UUID(text).version == 7


@pytest.mark.parametrize("raw,ok", [
    ('{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', True),   # brackets in text
    ('{"a": ' + "[" * 31 + "]" * 31 + "}", True),                     # depth 32: allowed
    ('{"a": ' + "[" * 32 + "]" * 32 + "}", False),                    # depth 33: refused
    ('{"a": 1, "a": 2}', False),
    ('{"a": NaN}', False),
    ('{"a": 1e999}', False),
    ('{"a": [1.5, -2e10]}', True),
])
def test_the_strict_reader_still_refuses_what_it_refused(raw, ok):
    if ok:
        assert parse_object(raw.encode()) == json.loads(raw)
    else:
        with pytest.raises(RequestError):
            parse_object(raw.encode())


def test_the_segment_check_is_pyjwts():
    assert isinstance(_pyjws(), (_FastJWS, jwt.api_jws.PyJWS))
    rng = random.Random(5)
    alphabet = "ABCabc012-_=+/!. é"
    segments = [b"", b"=", b"==", b"===", b"YQ", b"YQ==", b"YQ=", b"YWI=", b"YWJj", b"Y",
                b"YW=J", b"YWJjZA==", b"YWJjZA", b"ab!c", b"a b", "é".encode()]
    segments += [("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 9)))).encode()
                 for _ in range(5000)]
    for segment in segments:
        results = []
        for check in (jwt.api_jws.PyJWS._decode_base64url_segment,
                      _FastJWS._decode_base64url_segment):
            try:
                results.append(check(segment, "x"))
            except jwt.exceptions.DecodeError as exc:
                results.append(str(exc))
        assert results[0] == results[1], segment
