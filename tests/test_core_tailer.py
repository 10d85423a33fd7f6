"""Tailing real files on disk: Cursor / open_cursor directly, and through Engine.refresh + Store."""

from __future__ import annotations

import json
import os
from pathlib import Path

from helpers import (
    CLAUDE_MAIN,
    CLAUDE_SESSION,
    GEMINI_RUN4,
    append_bytes,
    claude_line,
    line,
    make_engine,
    write_lines,
)

from tokwatch.core.tailer import Change, Cursor, open_cursor
from tokwatch.ingest.setup import make_pricer

KEY = ("claude", CLAUDE_SESSION)
# Three distinct main-chain turns of the real session (lines 8, 41, 42) and their totals.
L8, L41, L42 = (line(CLAUDE_MAIN, n) for n in (8, 41, 42))
T8 = 3 + 15005 + 11442 + 9
T41 = 3 + 14600 + 21478 + 9
T42 = 3 + 77251 + 21478 + 88


def _claude_file(tmp_path: Path, lines: list[bytes]) -> Path:
    path = tmp_path / "claude" / "projects" / "-home-u-proj" / f"{CLAUDE_SESSION}.jsonl"
    write_lines(path, lines)
    return path


# ------------------------------------------------------------------------------------------- Cursor


def test_cursor_reads_then_follows_appends(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    p.write_bytes(b"one\ntwo\n")
    c = open_cursor(p)
    assert c is not None
    assert list(c.lines()) == [b"one", b"two"]
    assert c.offset == 8
    assert c.check() is Change.SAME
    assert list(c.lines()) == []
    append_bytes(p, b"three\n")
    assert c.check() is Change.GROWN
    assert list(c.lines()) == [b"three"]
    assert c.offset == 14
    assert c.check() is Change.SAME


def test_cursor_partial_line_waits_for_its_newline(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    p.write_bytes(b'{"a":1}\n{"b":')
    c = open_cursor(p)
    assert c is not None
    assert list(c.lines()) == [b'{"a":1}']
    assert c.offset == 8  # just past the last complete line
    append_bytes(p, b"2")
    c.check()
    assert list(c.lines()) == []  # still no newline: nothing emitted
    assert c.offset == 8
    append_bytes(p, b'}\n{"c":3}\n')
    assert c.check() is Change.GROWN
    assert list(c.lines()) == [b'{"b":2}', b'{"c":3}']
    assert c.offset == p.stat().st_size


def test_cursor_truncation_resets_to_zero(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    p.write_bytes(b"first line here\nsecond line here\n")
    c = open_cursor(p)
    assert c is not None
    assert len(list(c.lines())) == 2
    with open(p, "r+b") as f:
        f.truncate(0)
    assert c.check() is Change.RESET
    assert c.offset == 0
    append_bytes(p, b"new\n")
    c.check()
    assert list(c.lines()) == [b"new"]


def test_cursor_rewrite_with_different_head_resets(tmp_path: Path) -> None:
    """Truncated and regrown past the old offset before we looked: the fingerprint tells."""
    p = tmp_path / "a.jsonl"
    p.write_bytes(b"aaaa\n")
    c = open_cursor(p)
    assert c is not None
    assert list(c.lines()) == [b"aaaa"]
    with open(p, "r+b") as f:  # same inode, rewritten in place, now longer
        f.truncate(0)
        f.write(b"bbbbbbbb\ncccc\n")
    assert c.check() is Change.RESET
    assert list(c.lines()) == [b"bbbbbbbb", b"cccc"]


def test_cursor_atomic_replace_is_a_new_inode(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    p.write_bytes(b"old one\nold two\n")
    c = open_cursor(p)
    assert c is not None
    list(c.lines())
    old_ino = c.ino
    tmp = tmp_path / ".a.jsonl.tmp"
    tmp.write_bytes(b"old one\nold two\nnew three\n")  # longer, same head: only the inode tells
    os.replace(tmp, p)
    assert os.stat(p).st_ino != old_ino
    assert c.check() is Change.RESET
    assert c.ino == os.stat(p).st_ino
    assert list(c.lines()) == [b"old one", b"old two", b"new three"]


def test_cursor_deleted_file_is_gone(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    p.write_bytes(b"x\n")
    c = open_cursor(p)
    assert c is not None
    list(c.lines())
    p.unlink()
    assert c.check() is Change.GONE
    assert list(c.lines()) == []
    assert open_cursor(p) is None


def test_cursor_refuses_non_regular_files(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    assert open_cursor(fifo) is None
    assert open_cursor(tmp_path) is None
    c = Cursor(path=fifo)
    assert c.check() is Change.GONE


def test_cursor_line_longer_than_chunk(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    long = b"x" * 1000
    p.write_bytes(b"s\n" + long + b"\nt\n" + b"y" * 50)
    c = open_cursor(p)
    assert c is not None
    assert list(c.lines(chunk=16)) == [b"s", long, b"t"]
    assert c.offset == 2 + 1001 + 2
    append_bytes(p, b"y" * 50 + b"\n")
    c.check()
    assert list(c.lines(chunk=7)) == [b"y" * 100]


# ----------------------------------------------------------------------------------- Engine + Store


def _totals(changes) -> list[int]:
    return [c.turn.total for c in changes.turns]


def test_engine_append_counts_only_new_turns(tmp_path: Path) -> None:
    path = _claude_file(tmp_path, [L8])
    engine = make_engine(tmp_path / "claude")
    engine.backfill()
    assert engine.store.sessions[KEY].totals.total == T8
    assert not engine.refresh([path])  # nothing changed
    append_bytes(path, L41 + b"\n")
    changes = engine.refresh([path])
    assert _totals(changes) == [T41]
    assert set(changes.sessions) == {KEY}
    s = engine.store.sessions[KEY]
    assert changes.sessions[KEY] is s
    assert s.totals.turns == 2
    assert s.totals.total == T8 + T41


def test_engine_partial_line_completed_later(tmp_path: Path) -> None:
    path = _claude_file(tmp_path, [L8])
    engine = make_engine(tmp_path / "claude")
    engine.backfill()
    half = len(L41) // 2
    append_bytes(path, L41[:half])
    assert not engine.refresh([path]).turns
    assert engine.skips.lines == 0  # a torn line is not a malformed one
    append_bytes(path, L41[half:])
    assert not engine.refresh([path]).turns  # still no newline
    append_bytes(path, b"\n")
    assert _totals(engine.refresh([path])) == [T41]
    assert engine.store.sessions[KEY].totals.total == T8 + T41
    assert engine.skips.lines == 0


def test_engine_truncation_rereads_without_double_counting(tmp_path: Path) -> None:
    path = _claude_file(tmp_path, [L8, L41, L42])
    engine = make_engine(tmp_path / "claude")
    engine.backfill()
    assert engine.store.sessions[KEY].totals.total == T8 + T41 + T42
    read_before = engine.files[path].turns
    write_lines(path, [L8, L41])  # truncated: shorter than our offset
    assert not engine.refresh([path])  # re-read from 0, the same turns: no change
    assert engine.files[path].turns == read_before + 2
    assert engine.files[path].cursor.offset == path.stat().st_size
    s = engine.store.sessions[KEY]
    assert s.totals.turns == 3  # L42 was billed: it stays
    assert s.totals.total == T8 + T41 + T42
    append_bytes(path, claude_line("msg_new", output=7, input_tokens=5) + b"\n")
    assert _totals(engine.refresh([path])) == [12]
    s = engine.store.sessions[KEY]
    assert s.totals.turns == 4
    assert s.totals.total == T8 + T41 + T42 + 12


def test_engine_atomic_replace_rereads_new_inode(tmp_path: Path) -> None:
    path = _claude_file(tmp_path, [L8, L41])
    engine = make_engine(tmp_path / "claude")
    engine.backfill()
    tmp = path.with_name(".tmp-replace")
    write_lines(tmp, [L8, L41, L42])
    os.replace(tmp, path)
    changes = engine.refresh([path])
    assert engine.files[path].cursor.ino == path.stat().st_ino
    assert _totals(changes) == [T42]  # only the new one changed the store
    s = engine.store.sessions[KEY]
    assert s.totals.turns == 3
    assert s.totals.total == T8 + T41 + T42


def test_engine_finds_new_file_in_new_nested_folder(tmp_path: Path) -> None:
    _claude_file(tmp_path, [L8])
    root = tmp_path / "claude"
    engine = make_engine(root)
    engine.backfill()
    new_dir = root / "projects" / "-home-u-other" / "deeper"
    new_file = new_dir / "22222222-3333-4444-5555-666666666666.jsonl"
    write_lines(
        new_file, [claude_line("msg_other", session_id="22222222-3333-4444-5555-666666666666", output=3)]
    )
    # a watch event names the new top folder only
    changes = engine.refresh([root / "projects" / "-home-u-other"])
    assert [c.turn.session_id for c in changes.turns] == ["22222222-3333-4444-5555-666666666666"]
    assert new_file in engine.files
    assert len(engine.store.sessions) == 2
    # a second event for the same folder does not re-add or double the file
    assert not engine.refresh([root / "projects" / "-home-u-other"])


def test_engine_refresh_ignores_paths_outside_its_roots(tmp_path: Path) -> None:
    (tmp_path / "watched").mkdir()
    engine = make_engine(tmp_path / "watched")
    engine.backfill()
    outside = _claude_file(tmp_path / "elsewhere", [L8])
    assert not engine.refresh([outside])
    assert not engine.refresh([outside.parent])
    assert outside not in engine.files
    assert not engine.store.sessions


def test_engine_deleted_file_is_dropped_totals_kept(tmp_path: Path) -> None:
    path = _claude_file(tmp_path, [L8, L41])
    engine = make_engine(tmp_path / "claude")
    engine.backfill()
    cursor = engine.files[path].cursor
    path.unlink()
    assert cursor.check() is Change.GONE
    changes = engine.refresh([path])
    assert not changes.turns
    assert path not in engine.files
    s = engine.store.sessions[KEY]
    assert changes.sessions[KEY] is s and s.archived  # shown as archived, still counted
    assert s.totals.turns == 2
    assert s.totals.total == T8 + T41


def test_engine_line_longer_than_chunk(tmp_path: Path) -> None:
    from tokwatch.core.tailer import CHUNK

    big = json.loads(L42)
    big["message"]["content"] = [{"type": "text", "text": "z" * (CHUNK + CHUNK // 2)}]
    big_line = json.dumps(big, separators=(",", ":")).encode()
    assert len(big_line) > CHUNK
    path = _claude_file(tmp_path, [L8])
    engine = make_engine(tmp_path / "claude")
    engine.backfill()
    append_bytes(path, big_line + b"\n" + L41 + b"\n")
    assert _totals(engine.refresh([path])) == [T42, T41]
    assert engine.store.sessions[KEY].totals.total == T8 + T41 + T42
    assert engine.skips.lines == 0


def test_engine_gemini_document_rewritten_in_place(tmp_path: Path) -> None:
    doc = json.loads(GEMINI_RUN4.read_bytes())
    path = tmp_path / "gemini" / "session-2026-03-26T09-37-95ee2bc8.json"
    path.parent.mkdir()
    path.write_text(json.dumps(doc, indent=2))
    engine = make_engine(tmp_path / "gemini")
    engine.backfill()
    key = ("gemini", "95ee2bc8-b4a1-47fb-8db8-b0cfe91bee88")
    assert engine.store.sessions[key].totals.turns == 10
    ino = path.stat().st_ino
    new_msg = {
        "id": "aaaaaaaa-0000-4000-8000-000000000001",
        "timestamp": "2026-03-26T09:42:00.000Z",
        "type": "gemini",
        "content": "[redacted]",
        "model": "gemini-3.1-pro-preview",
        "tokens": {"input": 15000, "output": 30, "cached": 12000, "thoughts": 70, "tool": 0, "total": 15100},
    }
    doc["messages"].append(new_msg)
    doc["lastUpdated"] = "2026-03-26T09:42:00.000Z"
    with open(path, "w") as f:  # rewritten whole, same inode
        json.dump(doc, f, indent=2)
    assert path.stat().st_ino == ino
    changes = engine.refresh([path])
    assert [c.turn.turn_id for c in changes.turns] == [new_msg["id"]]  # only the new turn changed the store
    assert set(changes.sessions) == {key}
    s = engine.store.sessions[key]
    assert s.totals.turns == 11
    assert s.totals.total == 119000 + 15100
    assert s.context_used == 15000
    # unchanged file: nothing read
    assert not engine.refresh([path])


def test_cursor_passes_over_a_line_longer_than_max_line(tmp_path: Path, monkeypatch) -> None:
    import tokwatch.core.tailer as tailer

    monkeypatch.setattr(tailer, "MAX_LINE", 100)
    p = tmp_path / "a.jsonl"
    p.write_bytes(b"a\n" + b"x" * 500 + b"\nb\n")
    c = open_cursor(p)
    assert c is not None
    assert list(c.lines(chunk=32)) == [b"a", b"b"]
    assert c.oversized == 1
    assert c.offset == p.stat().st_size
    append_bytes(p, b"c\n")
    c.check()
    assert list(c.lines(chunk=32)) == [b"c"]


def test_engine_counts_an_oversized_line_as_skipped(tmp_path: Path, monkeypatch) -> None:
    import tokwatch.core.tailer as tailer

    monkeypatch.setattr(tailer, "MAX_LINE", 4096)
    big = json.loads(L41)  # whole read chunks without a newline: known to exceed MAX_LINE
    big["message"]["content"] = [{"type": "text", "text": "z" * (3 * tailer.CHUNK)}]
    path = _claude_file(tmp_path, [L8, json.dumps(big).encode(), L42])
    engine = make_engine(tmp_path / "claude")
    engine.backfill()
    s = engine.store.sessions[KEY]
    assert s.totals.total == T8 + T42
    assert engine.skips.by_file == {path: 1}


def test_engine_warm_start_from_the_ledger_reads_only_the_appended_part(tmp_path: Path) -> None:
    from tokwatch.core.ledger import Ledger
    from tokwatch.core.store import Store
    from tokwatch.ingest.engine import Engine

    path = _claude_file(tmp_path, [L8, L41])
    data = tmp_path / "data"
    cold = Engine(Store(make_pricer(), Ledger.at(data)), [tmp_path / "claude"])
    cold.backfill()
    assert cold.store.sessions[KEY].totals.total == T8 + T41
    offset = cold.files[path].cursor.offset
    append_bytes(path, L42 + b"\n")
    warm = Engine(Store(make_pricer(), Ledger.at(data)), [tmp_path / "claude"])
    warm.backfill()
    assert warm.files[path].turns == cold.files[path].turns + 1  # only the appended line was read
    assert warm.files[path].cursor.offset == offset + len(L42) + 1
    s = warm.store.sessions[KEY]
    assert s.totals.turns == 3
    assert s.totals.total == T8 + T41 + T42
    assert s.context_used == 3 + 77251 + 21478


def test_read_buffers_are_not_shared_between_cursors_read_at_once(tmp_path: Path) -> None:
    """Blocks come from a reused per-thread buffer: two files read in an interleaved way (one
    generator suspended inside the other's loop) must each get their own."""
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_bytes(b"".join(b"a%d\n" % i for i in range(50)))
    b.write_bytes(b"".join(b"b%d\n" % i for i in range(50)))
    ca, cb = open_cursor(a), open_cursor(b)
    assert ca is not None and cb is not None
    got_a: list[bytes] = []
    got_b: list[bytes] = []
    gen_b = cb.blocks(chunk=16)
    for buf, n in ca.blocks(chunk=16):
        got_a.extend(bytes(buf[:n]).split(b"\n"))
        nxt = next(gen_b, None)
        if nxt is not None:
            got_b.extend(bytes(nxt[0][: nxt[1]]).split(b"\n"))
    for buf, n in gen_b:
        got_b.extend(bytes(buf[:n]).split(b"\n"))
    assert got_a == [b"a%d" % i for i in range(50)]
    assert got_b == [b"b%d" % i for i in range(50)]
    # and a buffer that grew for a long line is reused without breaking the next file
    long = tmp_path / "long.jsonl"
    long.write_bytes(b"x" * 5000 + b"\nshort\n")
    c = open_cursor(long)
    assert c is not None
    assert list(c.lines(chunk=64)) == [b"x" * 5000, b"short"]
    c2 = open_cursor(a)
    assert c2 is not None
    assert list(c2.lines(chunk=64)) == [b"a%d" % i for i in range(50)]


class _Counting:
    """A file that counts the bytes read from it (to see how often a long line is read)."""

    total = 0

    def __init__(self, f) -> None:  # type: ignore[no-untyped-def]
        self.f = f

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        n = self.f.readinto(b)
        _Counting.total += n or 0
        return n

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.f, name)

    def __enter__(self):  # type: ignore[no-untyped-def]
        return self

    def __exit__(self, *exc: object) -> None:
        self.f.close()


def test_a_line_written_in_pieces_is_read_once_more_not_once_per_piece(tmp_path: Path, monkeypatch) -> None:
    """An 8 MiB line appended 64 KiB at a time (128 changes): each change reads only the new
    piece, and the line is read whole once when its newline comes (issue 12: it was read from its
    start on every change, quadratic)."""
    import tokwatch.core.tailer as tailer

    real_open = tailer.open_regular
    monkeypatch.setattr(tailer, "open_regular", lambda p: _Counting(real_open(p)))
    p = tmp_path / "a.jsonl"
    p.write_bytes(b'{"a":1}\n')
    c = open_cursor(p)
    assert c is not None
    assert list(c.lines()) == [b'{"a":1}']
    piece = 64 << 10
    body = b'{"big":"' + b"x" * (8 << 20) + b'"}'
    _Counting.total = 0
    for i in range(0, len(body), piece):
        append_bytes(p, body[i : i + piece])
        assert c.check() is Change.GROWN
        assert list(c.lines()) == []
    assert c.offset == 8
    append_bytes(p, b'\n{"c":3}\n')
    c.check()
    assert list(c.lines()) == [body, b'{"c":3}']
    assert _Counting.total < 2.5 * len(body), _Counting.total
    assert c.offset == p.stat().st_size and c.partial == 0


def test_a_cut_short_unfinished_line_is_looked_at_again(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    first = b'{"a":"' + b"y" * 1100 + b'"}\n'  # the head fingerprint lies within it
    p.write_bytes(first + b'{"b":22222')
    c = open_cursor(p)
    assert c is not None
    assert list(c.lines()) == [first[:-1]] and c.partial == 10
    with open(p, "r+b") as f:  # cut inside the unfinished line, then finished differently
        f.truncate(len(first) + 5)
        f.seek(len(first) + 5)
        f.write(b"3}\n")
    assert c.check() is Change.GROWN
    assert list(c.lines()) == [b'{"b":3}'] and c.partial == 0


def test_an_unfinished_line_past_max_line_is_passed_over_when_it_ends(tmp_path: Path, monkeypatch) -> None:
    import tokwatch.core.tailer as tailer

    monkeypatch.setattr(tailer, "MAX_LINE", 100)
    p = tmp_path / "a.jsonl"
    p.write_bytes(b"a\n")
    c = open_cursor(p)
    assert c is not None
    assert list(c.lines(chunk=32)) == [b"a"]
    for _ in range(10):  # 500 bytes in pieces, no newline yet
        append_bytes(p, b"x" * 50)
        c.check()
        assert list(c.lines(chunk=32)) == []
    append_bytes(p, b"xx\nb\n")
    c.check()
    assert list(c.lines(chunk=32)) == [b"b"]
    assert c.oversized == 1 and c.offset == p.stat().st_size


def test_rescan_does_not_sniff_unclaimed_files_again_until_they_change(tmp_path: Path, monkeypatch) -> None:
    """Task folders hold files no agent claims: the 30 s safety rescan must not open them all again
    (2,000 Cline tasks cost 3 CPU-seconds per rescan)."""
    from tokwatch.ingest import files as files_mod

    _claude_file(tmp_path, [L8])
    other = tmp_path / "claude" / "projects" / "-home-u-proj" / "notes.json"
    other.write_text('{"not": "a log"}')
    engine = make_engine(tmp_path / "claude")
    engine.backfill()
    sniffed: list[Path] = []
    real = files_mod.detect
    monkeypatch.setattr(files_mod, "detect", lambda p, *a: sniffed.append(p) or real(p, *a))
    engine.rescan()
    engine.rescan()
    assert sniffed == []
    other.write_text('{"still": "not a log", "but": "changed"}')
    engine.rescan()
    engine.rescan()
    assert sniffed == [other]
