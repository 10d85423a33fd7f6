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
