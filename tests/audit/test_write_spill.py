"""The spill file: framing, torn tails, damaged frames, locks and replay."""

from __future__ import annotations

import errno
import os
import struct
import subprocess
import sys
import zlib

import pytest
import sqlalchemy as sa

from pdp.audit import chain, spill
from pdp.audit.writer import replay_spill_dir
from tests.audit.test_write_chain import rec


def test_frames_round_trip():
    data = b"".join(spill.frame(p) for p in [b"a", b"", b"xyz" * 100])
    result = spill.read_frames(data)
    assert result.payloads == [b"a", b"", b"xyz" * 100]
    assert result.corrupt_at is None and result.torn_bytes == 0


def test_a_torn_tail_is_ignored():
    good = spill.frame(b'{"a":1}') + spill.frame(b'{"b":2}')
    for cut in range(1, len(spill.frame(b'{"c":3}'))):
        result = spill.read_frames(good + spill.frame(b'{"c":3}')[:cut])
        assert result.payloads == [b'{"a":1}', b'{"b":2}']
        assert result.torn_bytes == cut and result.corrupt_at is None


def test_a_crc_mismatch_is_detected():
    first = spill.frame(b"one")
    bad = bytearray(spill.frame(b"two"))
    bad[-1] ^= 0xFF
    result = spill.read_frames(first + bytes(bad) + spill.frame(b"three"))
    assert result.payloads == [b"one"]
    assert result.corrupt_at == len(first)


def test_a_damaged_length_is_detected():
    header = struct.pack(">II", spill.MAX_FRAME_BYTES + 1, zlib.crc32(b""))
    result = spill.read_frames(spill.frame(b"one") + header + b"rest")
    assert result.payloads == [b"one"] and result.corrupt_at is not None


def test_a_live_process_file_is_not_claimed(tmp_path):
    own = spill.SpillFile(tmp_path)
    own.append([b"x"], fsync=True)
    assert list(spill.claim_orphans(tmp_path)) == []      # we hold it
    path = own.path
    own.close()
    claimed = list(spill.claim_orphans(tmp_path))
    assert [p for p, _ in claimed] == [path]
    for _, fd in claimed:
        os.close(fd)


def test_a_file_held_by_another_process_is_not_claimed(tmp_path):
    code = ("import sys, time; from pdp.audit import spill; f = spill.SpillFile(sys.argv[1]); "
            "f.append([b'x'], fsync=True); print('ok', flush=True); time.sleep(30)")
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ok"
        assert list(spill.claim_orphans(tmp_path)) == []
    finally:
        child.kill()
        child.wait()
    claimed = list(spill.claim_orphans(tmp_path))     # its holder is dead now
    assert len(claimed) == 1
    os.close(claimed[0][1])


def _write_spill(directory, records, *, torn=b"", corrupt=False):
    f = spill.SpillFile(directory)
    f.append([r.to_json() for r in records], fsync=True)
    path = f.path
    f.close()
    assert path.exists()
    with open(path, "ab") as out:
        if corrupt:
            bad = bytearray(spill.frame(rec(999).to_json()))
            bad[12] ^= 0x01
            out.write(bytes(bad))
        out.write(torn)
    return path


def test_replay_is_in_order_and_exactly_once(store, tmp_path):
    chain.append(store, [rec(1), rec(2)])
    first = _write_spill(tmp_path, [rec(2), rec(3), rec(4)],
                         torn=spill.frame(rec(50).to_json())[:20])
    assert replay_spill_dir(store, tmp_path) == 2
    assert not first.exists()
    second = _write_spill(tmp_path, [rec(3), rec(4), rec(5)])   # replayed again: once
    assert replay_spill_dir(store, tmp_path) == 1
    assert not second.exists()
    with store.read() as session:
        ids = session.execute(sa.text("SELECT decision_id FROM decision_log ORDER BY seq")
                              ).scalars().all()
    assert ids == [f"dec-{i:05d}" for i in (1, 2, 3, 4, 5)]
    assert chain.verify(store).ok


def test_a_damaged_file_is_replayed_up_to_the_damage_and_kept(store, tmp_path):
    path = _write_spill(tmp_path, [rec(1), rec(2)], corrupt=True)
    assert replay_spill_dir(store, tmp_path) == 2
    assert not path.exists()
    assert path.with_name(path.name + spill.CORRUPT_SUFFIX).exists()
    assert replay_spill_dir(store, tmp_path) == 0           # not retried as a spill file


def test_a_spill_directory_with_a_limit_refuses_a_write_that_would_pass_it(tmp_path):
    directory = tmp_path / "spill"
    dead = spill.SpillFile(directory)             # another process's file counts too
    dead.append([b"x" * 500], fsync=False)
    dead.close()
    mine = spill.SpillFile(directory, max_bytes=1200)
    mine.append([b"y" * 500], fsync=False)        # 508 + 508 bytes: within the limit
    with pytest.raises(spill.SpillFull) as info:
        mine.append([b"z" * 500], fsync=False)
    assert info.value.errno == errno.ENOSPC
    assert "1,016 bytes" in str(info.value) and "1,200" in str(info.value)
    assert "PDP_AUDIT_SPILL_MAX_MB" in str(info.value)
    assert spill.read_file(mine.path).payloads == [b"y" * 500]    # nothing half-written
    assert spill.directory_bytes(directory) == 1016
    mine.close()


def test_without_a_limit_a_spill_directory_takes_what_the_disk_takes(tmp_path):
    unlimited = spill.SpillFile(tmp_path / "spill")
    for _ in range(20):
        unlimited.append([b"x" * 10_000], fsync=False)
    assert spill.directory_bytes(tmp_path / "spill") == 20 * 10_008
    unlimited.close()
