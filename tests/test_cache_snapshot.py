"""The cache's accelerators: the folded-session snapshot and the rate cards.

A warm start over the same roots shows the snapshot without parsing a single cached turn; a
session's turns are replayed only when a file of it grows or a view asks. Every path must give
exactly what a cold start gives.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import orjson
import pytest

from tokwatch.config import Config, PriceOverride
from tokwatch.core import pricing
from tokwatch.core.cache import Cache
from tokwatch.core.store import Store
from tokwatch.ingest.engine import Engine
from tokwatch.ingest.setup import make_pricer
from tokwatch.output.export import rows
from tokwatch.reports.report import Filters, build

FIXTURES = Path(__file__).parent / "fixtures" / "cache"
REAL = Path(__file__).parent / "fixtures" / "real"


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    root = tmp_path / "logs"
    shutil.copytree(FIXTURES, root)
    shutil.copytree(REAL, root / "real")
    return root


def _engine(root: Path, cache: Cache | None, config: Config | None = None) -> Engine:
    engine = Engine(Store(make_pricer(config)), [root], cache=cache)
    engine.backfill()
    return engine


def _rows(engine: Engine) -> list[dict[str, object]]:
    return [r.model_dump() for r in rows(engine.store)]


def _claude_line(mid: str, session: str, inp: int, out: int) -> bytes:
    return (
        orjson.dumps(
            {
                "type": "assistant",
                "sessionId": session,
                "cwd": "/p",
                "timestamp": "2026-02-01T00:00:00.000Z",
                "requestId": f"req_{mid}",
                "message": {
                    "id": mid,
                    "model": "claude-sonnet-4-5",
                    "usage": {"input_tokens": inp, "output_tokens": out},
                },
            }
        )
        + b"\n"
    )


def _claude_project(tmp_path: Path) -> tuple[Path, Path]:
    """An empty Claude home under `tmp_path`: (the root to read, its project folder)."""
    root = tmp_path / "logs"
    proj = root / "claude" / "projects" / "-p"
    proj.mkdir(parents=True)
    return root, proj


def test_warm_start_restores_the_snapshot_without_parsing_turns(logs: Path, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    cold = _rows(_engine(logs, None))
    _engine(logs, cache)
    warm = _engine(logs, cache)
    assert _rows(warm) == cold
    assert warm.store._lazy == set(warm.store.sessions)  # every session shown from the snapshot
    assert all(f._turns is None for f in warm.files.values())  # no cached turn was parsed
    # a view that needs the turns gets exactly the cold ones, and the numbers do not move
    key = next(iter(warm.store.sessions))
    cold_engine = _engine(logs, None)
    assert sorted(t.turn_id for t in warm.store.turns_of(key)) == sorted(
        t.turn_id for t in cold_engine.store.turns_of(key)
    )
    assert _rows(warm) == cold
    assert build(warm.store, "daily", Filters()).rows == build(cold_engine.store, "daily", Filters()).rows


def test_growth_of_a_restored_session_is_added_once(logs: Path, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    log = logs / "claude" / "projects" / "-p" / "s-snap.jsonl"
    log.parent.mkdir(parents=True)
    log.write_bytes(_claude_line("m1", "s-snap", 5, 7) + _claude_line("m2", "s-snap", 1, 1))
    _engine(logs, cache)
    # the second request's last streamed copy (bigger output), and a new one
    with open(log, "ab") as f:
        f.write(_claude_line("m2", "s-snap", 1, 9) + _claude_line("m3", "s-snap", 2, 3))
    warm = _engine(logs, cache)
    assert _rows(warm) == _rows(_engine(logs, None))
    s = warm.store.sessions[("claude", "s-snap")]
    assert (s.totals.turns, s.totals.input, s.totals.output) == (3, 8, 19)
    assert ("claude", "s-snap") not in warm.store._lazy  # replayed, then updated
    # and again from the cache written by that run
    assert _rows(_engine(logs, cache)) == _rows(warm)


def test_snapshot_is_only_used_over_the_same_roots(logs: Path, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    _engine(logs, cache)
    part = logs / "real"
    warm = _engine(part, cache)
    assert not warm.store._lazy  # another scope: replayed from the per-file turns
    assert _rows(warm) == _rows(_engine(part, None))
    # that run saved its own snapshot; the wider scope is still exact afterwards
    assert _rows(_engine(logs, cache)) == _rows(_engine(logs, None))


def test_snapshot_and_cards_are_dropped_when_prices_change(
    logs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = Cache(tmp_path / "c")
    _engine(logs, cache)
    cheap = Config(prices={"claude-sonnet-4-5": PriceOverride(input=0.0, output=0.0)})
    warm = _engine(logs, cache, cheap)
    assert not warm.store._lazy
    assert _rows(warm) == _rows(_engine(logs, None, cheap))

    # the same prices again: the cards come from the cache, genai-prices is not asked
    def boom(*_: object) -> None:
        raise AssertionError("genai-prices probed on a warm start")

    monkeypatch.setattr(pricing, "card_from_genai_prices", boom)
    again = _engine(logs, cache, cheap)
    assert again.store._lazy
    assert _rows(again) == _rows(warm)
    key = next(k for k in again.store.sessions if k[0] == "claude")
    again.store.turns_of(key)  # a replay prices turns: from the cached cards too


def test_snapshot_is_not_saved_while_a_batch_is_not_applied(logs: Path, tmp_path: Path) -> None:
    """The dashboard applies followed batches on the UI thread: until it has, the store lags
    behind the files, and a snapshot saved then would miss those turns forever."""
    cache = Cache(tmp_path / "c")
    log = logs / "claude" / "projects" / "-p" / "s-snap.jsonl"
    log.parent.mkdir(parents=True)
    log.write_bytes(_claude_line("m1", "s-snap", 5, 7))
    engine = _engine(logs, cache)
    held: list[list[object]] = []
    stop = threading.Event()
    started = threading.Event()
    t = threading.Thread(
        target=engine.follow,
        args=(stop, held.append, started.set),
        kwargs={"deferred": True},
        daemon=True,
    )
    t.start()
    assert started.wait(10)
    with open(log, "ab") as f:
        f.write(_claude_line("m2", "s-snap", 1, 1))
    for _ in range(200):
        if held:
            break
        stop.wait(0.02)
    stop.set()
    t.join(10)
    assert held and engine.emitted == 1 and engine.delivered == 0
    engine.save_cache()
    assert cache.read().snapshot is None
    # a restart replays the files, so the undelivered turn is counted
    warm = _engine(logs, cache)
    assert warm.store.sessions[("claude", "s-snap")].totals.turns == 2
    with engine.store.lock:
        engine.store.apply(held[0])  # type: ignore[arg-type]
        engine.delivered_batch()
    engine.save_cache()
    assert cache.read().snapshot is not None


def test_a_cache_cut_short_is_discarded(logs: Path, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    cold = _rows(_engine(logs, cache))
    data = cache.path.read_bytes()
    cache.path.write_bytes(data[:-10])
    assert cache.read().entries == {} and cache.read().snapshot is None
    assert _rows(_engine(logs, cache)) == cold


def test_malformed_snapshot_falls_back_to_the_files(logs: Path, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    cold = _rows(_engine(logs, cache))
    loaded = cache.read()
    assert loaded.snapshot is not None
    loaded.snapshot["sessions"] = [["claude", "x"]]  # wrong shape
    cache.save(loaded.entries, loaded.snapshot, loaded.cards)
    warm = _engine(logs, cache)
    assert not warm.store._lazy
    assert _rows(warm) == cold


# ---------------------------------------------------------------- found in review


def _totals(store: Store) -> tuple[int, int, int, int]:
    t = store.totals()
    return (t.turns, t.input, t.output, t.cost_pico)


def test_parallel_backfill_keeps_the_billed_turns_of_a_replaced_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tokwatch.ingest import engine as engine_mod

    root, proj = _claude_project(tmp_path)
    log = proj / "S.jsonl"
    log.write_bytes(_claude_line("m1", "S", 100, 10) + _claude_line("m2", "S", 200, 20))
    for i in range(3):
        (proj / f"o{i}.jsonl").write_bytes(_claude_line(f"o{i}", f"O{i}", 1, 1))
    cache = Cache(tmp_path / "c")
    _engine(root, cache)
    new = proj / "S.tmp"  # replaced: m1 and m2 were billed and stay counted
    new.write_bytes(_claude_line("m3", "S", 300, 30))
    new.replace(log)
    for i in range(3):
        (proj / f"o{i}.jsonl").write_bytes(_claude_line(f"p{i}", f"O{i}", 1, 1))
    monkeypatch.setattr(engine_mod, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(engine_mod, "PARALLEL_CHUNK_BYTES", 1)
    par = Engine(Store(make_pricer()), [root], cache=cache)
    par.backfill(workers=2)
    assert par.store.sessions[("claude", "S")].totals.turns == 3
    entry = cache.read().entries[str(log)]
    assert sorted(t.turn_id for t in entry.turns) == ["m1:req_m1", "m2:req_m2", "m3:req_m3"]
    warm = _engine(root, cache)
    warm.store.turns_of(("claude", "S"))  # replayed from the files: still all three
    assert _totals(warm.store) == _totals(par.store)


def test_replaying_a_session_while_the_engine_reads_is_safe(logs: Path, tmp_path: Path) -> None:
    """The dashboard replays restored sessions on the UI thread while the engine thread reads."""
    root = tmp_path / "many"
    proj = root / "claude" / "projects" / "-p"
    proj.mkdir(parents=True)
    log = proj / "big.jsonl"
    log.write_bytes(
        b"".join(_claude_line(f"m{s}_{i}", f"S{s}", 10, 1) for s in range(300) for i in range(40))
    )
    cache = Cache(tmp_path / "c")
    _engine(root, cache)
    warm = _engine(root, cache)
    keys = sorted(warm.store._lazy)
    assert len(keys) == 300
    stop = threading.Event()

    def engine_thread() -> None:
        n = 0
        while not stop.is_set():
            with open(log, "ab") as fh:
                fh.write(_claude_line(f"new{n}", "NEW", 1, 1))
            n += 1
            warm.store.apply(warm.refresh([log]))

    t = threading.Thread(target=engine_thread)
    t.start()
    try:
        for k in keys:  # must not raise "dictionary changed size during iteration"
            assert len(warm.store.turns_of(k)) == 40
    finally:
        stop.set()
        t.join()
    assert not warm.store._lazy & set(keys)
    assert sum(warm.store.sessions[k].totals.turns for k in keys) == 12000


def test_a_failing_replay_keeps_the_session_usable(logs: Path, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    _engine(logs, cache)
    warm = _engine(logs, cache)
    key = next(k for k in warm.store.sessions if k[0] == "claude")
    shown = warm.store.sessions[key].totals.turns

    def broken(_: object) -> list[object]:
        raise RuntimeError("disk went away")

    warm.store._loader = broken  # type: ignore[assignment]
    assert warm.store.turns_of(key) == []
    assert key not in warm.store._lazy
    assert warm.store.sessions[key].totals.turns == shown  # the numbers shown are kept


def test_an_interrupt_between_reading_and_handing_out_saves_no_snapshot(tmp_path: Path) -> None:
    """`watch` saves the cache in a `finally`: after Ctrl-C between a read and its batch, the
    store lags behind the files, so only the files may be trusted next time."""
    root, proj = _claude_project(tmp_path)
    log = proj / "S.jsonl"
    log.write_bytes(_claude_line("m1", "S", 100, 10))
    cache = Cache(tmp_path / "c")
    _engine(root, cache)
    engine = Engine(Store(make_pricer()), [root], cache=cache, force_polling=True)
    engine.backfill()
    with open(log, "ab") as fh:
        fh.write(_claude_line("m2", "S", 5000, 500))
    real_read = engine._read

    def read_then_interrupt(path: Path, first: bool = False) -> list[object]:
        out = real_read(path, first)
        if out:
            raise KeyboardInterrupt
        return out

    engine._read = read_then_interrupt  # type: ignore[method-assign,assignment]
    with pytest.raises(KeyboardInterrupt):
        engine.follow(threading.Event(), engine.store.apply)  # type: ignore[arg-type]
    assert not engine.save_cache()
    assert cache.read().snapshot is None
    assert _totals(_engine(root, cache).store) == _totals(_engine(root, None).store)


def test_a_log_deleted_and_written_again_keeps_its_billed_turns(tmp_path: Path) -> None:
    root, proj = _claude_project(tmp_path)
    log = proj / "S.jsonl"
    log.write_bytes(_claude_line("m1", "S", 1000, 100))
    cache = Cache(tmp_path / "c")
    live = _engine(root, cache)
    log.unlink()
    live.store.apply(live.refresh([log]))
    log.write_bytes(_claude_line("m2", "S", 10, 1))
    live.store.apply(live.refresh([log]))
    assert live.store.sessions[("claude", "S")].totals.turns == 2
    live.save_cache()
    warm = _engine(root, cache)
    warm.store.turns_of(("claude", "S"))
    assert _totals(warm.store) == _totals(live.store)


def test_the_pricing_key_covers_tokwatch_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    import tokwatch

    before = make_pricer().key()
    monkeypatch.setattr(tokwatch, "__version__", tokwatch.__version__ + ".post1")
    assert make_pricer().key() != before


def test_views_do_not_replay_sessions_before_every_file_is_followed(tmp_path: Path) -> None:
    """The dashboard draws while the history loads. A restored session replayed then would be
    built from the files followed so far, and miss the turns of those not reached yet."""
    root, proj = _claude_project(tmp_path)
    for i in range(40):  # one session spread over many files (a session and its subagents)
        (proj / f"f{i:02d}.jsonl").write_bytes(_claude_line(f"m{i}", "S", 10, 1))
    cache = Cache(tmp_path / "c")
    _engine(root, cache)
    store = Store(make_pricer())
    engine = Engine(store, [root], cache=cache)
    seen: list[int] = []

    def progress(_: object) -> None:  # runs inside the backfill, as a view would meanwhile
        if ("claude", "S") in store.sessions:
            seen.append(len(store.turns_of(("claude", "S"))))

    engine.backfill(progress=progress)
    assert seen and set(seen) == {0}  # numbers shown, turns held back
    assert ("claude", "S") in store._lazy
    assert len(store.turns_of(("claude", "S"))) == 40
    assert store.sessions[("claude", "S")].totals.turns == 40
    with open(proj / "f00.jsonl", "ab") as f:  # the last streamed copy of m0: merged, not added
        f.write(_claude_line("m0", "S", 10, 9))
    store.apply(engine.refresh([proj / "f00.jsonl"]))
    assert _totals(store) == _totals(_engine(root, None).store)


def test_new_turns_of_a_restored_session_are_reported_as_changes(tmp_path: Path) -> None:
    """`watch` prints, and the dashboard redraws, from what `apply` reports as changed."""
    root, proj = _claude_project(tmp_path)
    log = proj / "S.jsonl"
    log.write_bytes(_claude_line("m1", "S", 5, 7))
    cache = Cache(tmp_path / "c")
    outcomes = []
    for c in (None, cache):  # cold, then warm from an up-to-date snapshot
        if c is not None:
            _engine(root, c)
        engine = _engine(root, c)
        if c is not None:
            assert ("claude", "S") in engine.store._lazy
        n = len(outcomes)
        with open(log, "ab") as f:
            f.write(_claude_line(f"n{n}a", "S", 1, 1) + _claude_line(f"n{n}b", "S", 1, 1))
        changes = engine.store.apply(engine.refresh([log]))
        outcomes.append((len(changes.turns), sorted(changes.sessions)))
    assert outcomes[1] == outcomes[0] == (2, [("claude", "S")])
