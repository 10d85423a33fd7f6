"""Which lines of a block can matter, found at C speed before any JSON is parsed.

Most lines of a log cannot carry usage (Claude user lines with megabytes of tool output): they are
never copied out, let alone parsed. Lines that will not be parsed are still checked to be shaped
like a JSON object, so malformed ones are counted.
"""

from __future__ import annotations

from collections.abc import Iterator


def _needle_lines(buf: bytearray, n: int, needle: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of each line of `buf[:n]` holding `needle`, each line once, in order."""
    find, rfind = buf.find, buf.rfind
    i = find(needle, 0, n)
    while i >= 0:
        end = find(b"\n", i, n)
        if end < 0:
            end = n
        yield rfind(b"\n", 0, i) + 1, end
        i = find(needle, end, n)


def select_lines(buf: bytearray, n: int, needles: tuple[bytes, ...]) -> Iterator[tuple[int, int]]:
    """Where the lines of `buf[:n]` that contain a needle are, in order, found with C-speed
    `find` (memchr and friends).

    Most lines of a log cannot carry usage (Claude user lines with megabytes of tool output):
    they are never copied out, let alone parsed.
    """
    if not needles:
        start = 0
        while start <= n:
            end = buf.find(b"\n", start, n)
            if end < 0:
                end = n
            if end > start:
                yield start, end
            start = end + 1
        return
    if len(needles) == 1:
        yield from _needle_lines(buf, n, needles[0])
    else:  # a line may hold several needles: once, in file order
        yield from sorted({span for nd in needles for span in _needle_lines(buf, n, nd)})


def misshapen(buf: bytearray, n: int, needles: tuple[bytes, ...]) -> int:
    """How many lines that will not be parsed are not even shaped like a JSON object (`{...}`).

    A JSONL record is an object; anything else is malformed and counted. One walk from newline to
    newline (memchr) checking the bytes on either side: 8x cheaper than counting `}\\n{` joints.
    Only a line that fails it is copied out and looked at closely.
    """
    find = buf.find
    bad = 0
    start = 0
    while start < n:
        end = find(b"\n", start, n)
        if end < 0:
            end = n
        if buf[start] != 123 or buf[end - 1] != 125:  # "{" ... "}"
            line = bytes(buf[start:end])
            stripped = line.strip()
            shaped = stripped[:1] == b"{" and stripped[-1:] == b"}"
            # (a needle line is parsed, and counted there if bad)
            if stripped and not shaped and not any(nd in line for nd in needles):
                bad += 1
        start = end + 1
    return bad
