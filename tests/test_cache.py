"""The persistent cache: warm starts give the same numbers as cold ones, and it is never trusted blindly."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from tokwatch.core import cache as cache_mod
from tokwatch.core.cache import Cache
from tokwatch.core.store import Store
from tokwatch.ingest.engine import Engine
from tokwatch.ingest.setup import make_pricer
from tokwatch.output.export import rows

FIXTURES = Path(__file__).parent / "fixtures" / "cache"


def _assistant(mid: str, inp: int, out: int, ts: str = "2026-01-01T00:00:00.000Z") -> bytes:
    return (
        orjson.dumps(
            {
                "type": "assistant",
                "sessionId": "s-cache",
                "cwd": "/p",
                "timestamp": ts,
                "requestId": f"req_{mid}",
                "message": {
                    "id": mid,
                    "model": "claude-sonnet-4-5-20250929",
                    "usage": {
                        "input_tokens": inp,
                        "output_tokens": out,
                        "cache_read_input_tokens": 100,
                        "cache_creation_input_tokens": 10,
                    },
                },
            }
        )
        + b"\n"
    )


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    root = tmp_path / "logs"
    shutil.copytree(FIXTURES, root)
    return root


def _export(root: Path, cache: Cache | None) -> tuple[list[dict[str, object]], Engine]:
    engine = Engine(Store(make_pricer()), [root], cache=cache)
    engine.backfill()
    return [r.model_dump() for r in rows(engine.store)], engine


def test_warm_equals_cold_and_reads_only_appended(logs: Path, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    cold, _ = _export(logs, None)
    first, _ = _export(logs, cache)
    assert first == cold
    assert cache.path.exists()
    warm, engine = _export(logs, cache)
    assert warm == cold
    # every file was resumed at its end: nothing left to read
    for f in engine.files.values():
        assert f.cursor.offset == f.cursor.size or f.document


def test_append_after_cache_is_read(logs: Path, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    log = logs / "claude" / "projects" / "-p" / "s-cache.jsonl"
    log.parent.mkdir(parents=True)
    log.write_bytes(_assistant("m1", 5, 7))
    _export(logs, cache)
    with open(log, "ab") as f:
        f.write(_assistant("m2", 3, 4))
    warm, _ = _export(logs, cache)
    cold, _ = _export(logs, None)
    assert warm == cold
    row = next(r for r in warm if r["session_id"] == "s-cache")
    assert (row["turns"], row["input_tokens"], row["output_tokens"]) == (2, 8, 11)


def _live_after(logs: Path, log: Path, change: Callable[[], None]) -> dict[str, object]:
    """The row a running tokwatch shows after `change` happened while it followed the file."""
    engine = Engine(Store(make_pricer()), [logs])
    engine.backfill()
    change()
    engine.store.apply(engine.refresh([log]))
    return next(r.model_dump() for r in rows(engine.store) if r.session_id == "s-cache")


def _session_row(export_rows: list[dict[str, object]]) -> tuple[object, ...]:
    row = next(r for r in export_rows if r["session_id"] == "s-cache")
    return (row["turns"], row["input_tokens"], row["output_tokens"])


# A log rewritten shorter, replaced, or rewritten in place is read again from 0. Its earlier turns
# were billed, so they stay counted (a turn read again replaces itself by id): after a restart the
# cache gives exactly what a tokwatch that kept running shows.


def test_truncated_file_is_reread_and_earlier_turns_stay(logs: Path, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    log = logs / "claude" / "projects" / "-p" / "s-cache.jsonl"
    log.parent.mkdir(parents=True)
    original = _assistant("m1", 5, 7) + _assistant("m2", 3, 4)
    log.write_bytes(original)
    _export(logs, cache)
    log.write_bytes(_assistant("m9", 1, 1))  # truncated and rewritten, shorter
    warm, _ = _export(logs, cache)
    assert _session_row(warm) == (3, 9, 12)
    log.write_bytes(original)
    live = _live_after(logs, log, lambda: log.write_bytes(_assistant("m9", 1, 1)))
    assert (live["turns"], live["input_tokens"], live["output_tokens"]) == (3, 9, 12)
    cold, _ = _export(logs, None)  # without the cache only what the file holds now is known
    assert _session_row(cold) == (1, 1, 1)


def test_replaced_file_same_size_is_reread(logs: Path, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    log = logs / "claude" / "projects" / "-p" / "s-cache.jsonl"
    log.parent.mkdir(parents=True)
    log.write_bytes(_assistant("m1", 5, 7))
    _export(logs, cache)
    tmp = log.with_suffix(".tmp")
    tmp.write_bytes(_assistant("m2", 6, 8))  # same length, other content, new inode
    os.replace(tmp, log)
    warm, _ = _export(logs, cache)
    assert _session_row(warm) == (2, 11, 15)
    # the same file written again with the same turn: counted once, not twice
    tmp.write_bytes(_assistant("m2", 6, 8))
    os.replace(tmp, log)
    again, _ = _export(logs, cache)
    assert _session_row(again) == (2, 11, 15)


def test_rewritten_in_place_with_other_first_bytes_is_reread(logs: Path, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    log = logs / "claude" / "projects" / "-p" / "s-cache.jsonl"
    log.parent.mkdir(parents=True)
    log.write_bytes(_assistant("m1", 5, 7))
    _export(logs, cache)
    with open(log, "r+b") as f:  # same inode, longer, different start
        f.write(_assistant("m3", 2, 2, ts="2026-01-02T00:00:00.000Z") + _assistant("m4", 1, 1))
    warm, _ = _export(logs, cache)
    assert _session_row(warm) == (3, 8, 10)
    cold, _ = _export(logs, None)
    assert _session_row(cold) == (2, 3, 3)


def test_log_deleted_while_running_stays_in_the_cache(logs: Path, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    cold, _ = _export(logs, None)
    engine = Engine(Store(make_pricer()), [logs], cache=cache)
    engine.backfill()
    victim = next(logs.rglob("rollout-*.jsonl"))
    victim.unlink()
    engine.store.apply(engine.refresh([victim]))
    engine.save_cache()
    warm, restarted = _export(logs, cache)
    assert warm == cold
    assert restarted.archived_files == 1


def test_corrupt_cache_is_discarded_and_rebuilt(logs: Path, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    cold, _ = _export(logs, None)
    cache.directory.mkdir(parents=True)
    cache.path.write_bytes(b'{"version": 1, "files": {"x": ')  # torn
    assert cache.load() == {}
    warm, _ = _export(logs, cache)
    assert warm == cold
    assert cache.load()  # rebuilt
    cache.path.write_bytes(
        b'{"version": %d, "fields": [], "files": {"a": {"turns": [[1]]}}}' % cache_mod.CACHE_VERSION
    )
    assert cache.load() == {}


def test_version_bump_discards_cache(logs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = Cache(tmp_path / "c")
    _export(logs, cache)
    assert cache.load()
    monkeypatch.setattr(cache_mod, "CACHE_VERSION", cache_mod.CACHE_VERSION + 1)
    assert cache.load() == {}
    cold, _ = _export(logs, None)
    warm, _ = _export(logs, cache)
    assert warm == cold


def test_deleted_log_kept_as_archived_until_prune(logs: Path, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    cold, _ = _export(logs, cache)
    victim = next(logs.rglob("rollout-*.jsonl"))
    victim.unlink()
    warm, engine = _export(logs, cache)
    assert warm == cold  # the deleted session's turns were billed: still counted
    assert engine.archived_files == 1
    archived = [s for s in engine.store.sessions.values() if s.archived]
    assert [s.agent for s in archived] == ["codex"]
    no_cache, _ = _export(logs, None)
    assert len(no_cache) == len(cold) - 1
    assert cache.prune() == 1
    pruned, _ = _export(logs, cache)
    assert pruned == no_cache


def test_cache_write_is_atomic_and_failure_is_not_fatal(logs: Path, tmp_path: Path) -> None:
    target = tmp_path / "ro"
    target.mkdir()
    cache = Cache(target)
    _export(logs, cache)
    before = cache.path.read_bytes()
    assert not [p for p in target.iterdir() if p.name.endswith(".tmp")]
    target.chmod(0o500)
    try:
        if os.access(target, os.W_OK):  # running as root: permissions are not enforced
            pytest.skip("cannot make a read-only folder as root")
        _export(logs, cache)  # must not raise
        assert cache.path.read_bytes() == before
    finally:
        target.chmod(0o700)


def test_two_writers_never_corrupt(logs: Path, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    e1 = Engine(Store(make_pricer()), [logs], cache=cache)
    e2 = Engine(Store(make_pricer()), [logs], cache=cache)
    e1.backfill()
    e2.backfill()
    for _ in range(5):
        e1.save_cache()
        e2.save_cache()
    assert cache.load()
    warm, _ = _export(logs, cache)
    cold, _ = _export(logs, None)
    assert warm == cold


def test_warm_start_with_nothing_new_does_not_rewrite_the_cache(logs: Path, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    (logs / "MANIFEST.json").write_text('{"not": "a log"}')  # a file no agent claims
    _export(logs, cache)
    first = cache.path.stat().st_mtime_ns
    os.utime(cache.path, ns=(first - 10**9, first - 10**9))
    _export(logs, cache)
    assert cache.path.stat().st_mtime_ns == first - 10**9  # not written again
    log = next(logs.rglob("rollout-*.jsonl"))
    with open(log, "ab") as f:
        f.write(b'{"type":"event_msg","payload":{"type":"other"}}\n')
    _export(logs, cache)
    assert cache.path.stat().st_mtime_ns != first - 10**9  # an appended line moves the offset: saved
