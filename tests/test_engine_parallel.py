"""The parallel backfill gives exactly what a single process gives (totals, skips, followed state)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tokwatch.core.store import Store
from tokwatch.ingest import backfill as backfill_mod
from tokwatch.ingest.engine import Engine
from tokwatch.ingest.setup import make_pricer
from tokwatch.output.export import rows

REAL = Path(__file__).parent / "fixtures" / "real"


def test_parallel_backfill_equals_sequential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "logs"
    shutil.copytree(REAL, root)
    bad = root / "claude" / "projects" / "-p" / "bad.jsonl"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"garbage\n{oops\n")
    seq = Engine(Store(make_pricer()), [root])
    seq.backfill(workers=1)
    monkeypatch.setattr(backfill_mod, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(backfill_mod, "PARALLEL_CHUNK_BYTES", 1)  # one file per worker task
    par = Engine(Store(make_pricer()), [root])
    par.backfill(workers=2)
    assert [r.model_dump() for r in rows(par.store)] == [r.model_dump() for r in rows(seq.store)]
    assert par.skips.by_file == seq.skips.by_file and par.skips.lines == 2
    assert set(par.files) == set(seq.files)
    for path, f in seq.files.items():
        g = par.files[path]
        assert (g.cursor.offset, g.cursor.fingerprint, g.cursor.tail) == (
            f.cursor.offset,
            f.cursor.fingerprint,
            f.cursor.tail,
        )
        assert g.parser.state() == f.parser.state()
    # and it keeps following: an append after the parallel backfill is read from the right offset
    log = next(p for p in par.files if p.name.startswith("rollout-2025-10-21"))
    before = par.store.totals().turns
    with open(log, "ab") as fh:
        fh.write(b"not json\n")
    assert not par.refresh([log])
    assert par.store.totals().turns == before
    assert par.skips.by_file[log] == 1


class _CaptureStream:
    """What Textual puts in `sys.stderr` while the dashboard runs: no file descriptor behind it."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        return -1


def _copy_real(tmp_path: Path) -> Path:
    root = tmp_path / "logs"
    shutil.copytree(REAL, root)
    return root


def test_parallel_backfill_does_not_need_a_real_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under the dashboard, spawning the workers used to fail ("bad value(s) in fds_to_keep")."""
    root = _copy_real(tmp_path)
    seq = Engine(Store(make_pricer()), [root])
    seq.backfill(workers=1)
    monkeypatch.setattr(backfill_mod, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr("sys.stderr", _CaptureStream())
    par = Engine(Store(make_pricer()), [root])
    problems: list[str] = []
    par.on_problem = problems.append
    par.backfill(workers=2)
    assert problems == []  # the workers really ran: no fallback was needed
    assert [r.model_dump() for r in rows(par.store)] == [r.model_dump() for r in rows(seq.store)]


def test_a_parallel_backfill_that_cannot_start_falls_back_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _copy_real(tmp_path)
    seq = Engine(Store(make_pricer()), [root])
    seq.backfill(workers=1)
    monkeypatch.setattr(backfill_mod, "PARALLEL_MIN_BYTES", 0)

    def broken(*_a: object, **_k: object) -> object:
        raise OSError("no more processes")

    monkeypatch.setattr("concurrent.futures.ProcessPoolExecutor", broken)
    par = Engine(Store(make_pricer()), [root])
    problems: list[str] = []
    par.on_problem = problems.append
    par.backfill(workers=2)
    assert len(problems) == 1
    assert "OSError: no more processes" in problems[0] and "one process instead" in problems[0]
    assert [r.model_dump() for r in rows(par.store)] == [r.model_dump() for r in rows(seq.store)]
    assert set(par.files) == set(seq.files)


def test_a_worker_that_dies_is_replaced_by_this_process_and_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _copy_real(tmp_path)
    seq = Engine(Store(make_pricer()), [root])
    seq.backfill(workers=1)
    monkeypatch.setattr(backfill_mod, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(backfill_mod, "PARALLEL_CHUNK_BYTES", 1)
    monkeypatch.setattr(backfill_mod, "read_paths", _dies)
    par = Engine(Store(make_pricer()), [root])
    problems: list[str] = []
    par.on_problem = problems.append
    par.backfill(workers=2)
    assert [r.model_dump() for r in rows(par.store)] == [r.model_dump() for r in rows(seq.store)]
    assert len(problems) <= 1  # said once, however many chunks the worker failed
    if problems:  # (this process may have read every chunk itself before the worker got one)
        assert "reading process failed" in problems[0]


def _dies(paths: list[str]) -> list[object]:
    raise RuntimeError("worker crashed")


def test_workers_write_nothing_on_the_terminal(tmp_path: Path) -> None:
    """A worker's standard streams are /dev/null and the log file, never the dashboard's screen."""
    import subprocess
    import sys

    log = tmp_path / "tokwatch.log"
    code = (
        "import sys, os; from tokwatch.ingest.backfill import _worker_init; "
        f"_worker_init(os.getppid(), {str(log)!r}); print('out'); print('err', file=sys.stderr); "
        "sys.stdout.flush(); sys.stderr.flush(); os.write(2, b'fd2')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    assert done.stdout == b"" and done.stderr == b""
    assert log.read_bytes() == b"err\nfd2"
