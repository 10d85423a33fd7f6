"""Several tokwatch processes on one ledger while the logs grow, are truncated and are deleted.

Two followers (`watch --jsonl`: the dashboard's engine without the screen) on overlapping roots, a
report and an export looping on other roots, all at once. At the end the ledger holds exactly
every turn ever written, the deleted and truncated ones included.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]


def _line(session: str, mid: str, inp: int, out: int) -> bytes:
    return (
        orjson.dumps(
            {
                "type": "assistant",
                "sessionId": session,
                "cwd": "/p",
                "timestamp": "2026-03-01T10:00:00.000Z",
                "requestId": f"req_{mid}",
                "message": {
                    "id": mid,
                    "model": "claude-sonnet-4-5-20250929",
                    "usage": {"input_tokens": inp, "output_tokens": out},
                },
            }
        )
        + b"\n"
    )


class Follower:
    """A `tokwatch watch --jsonl` process and the turn ids it has announced."""

    def __init__(self, roots: list[Path], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tokwatch", "watch", "--jsonl", *map(str, roots)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.seen: set[str] = set()
        self.ready = threading.Event()
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            ev = json.loads(raw)
            if ev["event"] == "ready":
                self.ready.set()
            elif ev["event"] == "turn":
                with self.cond:
                    self.seen.add(ev["turn_id"].rsplit(":", 2)[-2])  # the message id
                    self.cond.notify_all()

    def wait_seen(self, ids: set[str], timeout: float = 20.0) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: ids <= self.seen, timeout), (
                f"never announced: {ids - self.seen}"
            )

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


def _loop(cmd: list[str], env: dict[str, str], stop: threading.Event, failures: list[str]) -> None:
    while not stop.is_set():
        r = subprocess.run(
            [sys.executable, "-m", "tokwatch", *cmd], env=env, capture_output=True, timeout=120
        )
        if r.returncode != 0:
            failures.append(f"{cmd[0]}: {r.stderr.decode()[-500:]}")


def test_processes_on_one_ledger_never_lose_or_double_a_turn(tmp_path: Path) -> None:
    rng = random.Random(7)
    logs = tmp_path / "logs"
    a = logs / "claude" / "projects" / "-a"
    b = logs / "claude" / "projects" / "-b"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TOKWATCH_DATA_DIR": str(tmp_path / "data")}
    truth: dict[str, tuple[int, int]] = {}  # message id -> (input, output): every turn ever written
    lines: dict[Path, list[bytes]] = {}
    n = 0

    def append(path: Path, k: int) -> set[str]:
        nonlocal n
        new = set()
        with open(path, "ab") as f:
            for _ in range(k):
                mid = f"m{n}"
                n += 1
                inp, out = rng.randint(1, 500), rng.randint(1, 500)
                raw = _line(path.stem, mid, inp, out)
                f.write(raw)
                lines.setdefault(path, []).append(raw)
                truth[mid] = (inp, out)
                new.add(mid)
        return new

    for i in range(3):  # some history before anyone starts
        append(a / f"a{i}.jsonl", 20)
        append(b / f"b{i}.jsonl", 20)

    everywhere = Follower([logs], env)  # the first "dashboard": every root
    only_a = Follower([a], env)  # the second: an overlapping root
    stop = threading.Event()
    failures: list[str] = []
    loops = [
        threading.Thread(
            target=_loop, args=(["export", str(b), "-o", str(tmp_path / "b.csv")], env, stop, failures)
        ),
        threading.Thread(target=_loop, args=(["report", "daily", str(logs), "--json"], env, stop, failures)),
    ]
    for t in loops:
        t.start()
    try:
        assert everywhere.ready.wait(30) and only_a.ready.wait(30)
        history = set(truth)  # recorded by the backfills: never announced one by one
        for step in range(40):
            folder = rng.choice([a, b])
            path = folder / f"{folder.name[1]}{rng.randint(0, 4)}.jsonl"
            append(path, rng.randint(1, 6))
            if step % 6 == 5:
                # destructive: only once a process that covers the file has announced its turns
                everywhere.wait_seen(set(truth) - history)
                victim = rng.choice(sorted(lines))
                if rng.random() < 0.5:
                    keep = lines[victim][: len(lines[victim]) // 2]
                    victim.write_bytes(b"".join(keep))  # truncated in place
                    lines[victim] = keep
                else:
                    victim.unlink()
                    del lines[victim]
        everywhere.wait_seen(set(truth) - history)
    finally:
        stop.set()
        for t in loops:
            t.join(timeout=120)
        everywhere.stop()
        only_a.stop()
    assert not failures, failures
    r = subprocess.run(
        [sys.executable, "-m", "tokwatch", "export", str(logs), "--format", "json"],
        env=env,
        capture_output=True,
    )
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert sum(row["turns"] for row in got) == len(truth)
    assert sum(row["input_tokens"] for row in got) == sum(i for i, _ in truth.values())
    assert sum(row["output_tokens"] for row in got) == sum(o for _, o in truth.values())
    # and the logs alone now hold less: the rest lives only in the ledger
    r = subprocess.run(
        [sys.executable, "-m", "tokwatch", "export", str(logs), "--format", "json", "--no-cache"],
        env=env,
        capture_output=True,
    )
    assert (
        sum(row["turns"] for row in json.loads(r.stdout)) == sum(len(v) for v in lines.values()) < len(truth)
    )
