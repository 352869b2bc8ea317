"""Check the browser tests' screenshots: every PNG the run wrote to test-output/ decodes and is not blank.

Run by scripts/test.sh after the tests, with the time the run started:

    python3 scripts/check-screenshots.py --since EPOCH_SECONDS [--at-least N]

A screenshot is blank when its pixels are (nearly) all one colour, as a page that never rendered is.
PNG is decoded here with zlib (8-bit RGB or RGBA, as Chromium writes them): no image library needed.
"""

from __future__ import annotations

import argparse
import struct
import sys
import zlib
from collections import Counter
from pathlib import Path

OUTPUT = Path(__file__).resolve().parent.parent / "test-output"
MOST_OF_ONE_COLOUR = 0.995
"""A screenshot whose commonest pixel covers more than this share of it counts as blank."""


def pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and the rows of raw pixels (unfiltered) of an 8-bit RGB/RGBA PNG."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    at, idat, header = 8, b"", None
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        body = data[at + 8 : at + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        at += 12 + length
    if header is None:
        raise ValueError("no IHDR")
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG (depth {depth}, colour type {colour}, interlace {interlace})")
    step = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * step
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - step] if x >= step else 0
            b, c = previous[x], previous[x - step] if x >= step else 0
            if kind == 1:
                line[x] = (line[x] + a) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + b) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, rows


def blank_share(path: Path) -> float:
    """The share of the (sampled) pixels that have the commonest colour."""
    width, height, rows = pixels(path)
    step = len(rows[0]) // width
    counts = Counter(row[x : x + 3] for row in rows[::4] for x in range(0, len(row), step * 4))
    return counts.most_common(1)[0][1] / sum(counts.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--since", type=float, required=True, help="only screenshots written after this time (epoch seconds)")
    parser.add_argument("--at-least", type=int, default=1, help="fail if the run wrote fewer screenshots than this")
    args = parser.parse_args()
    shots = sorted(p for p in OUTPUT.glob("*.png") if p.stat().st_mtime >= args.since)
    problems = []
    for shot in shots:
        try:
            share = blank_share(shot)
        except (ValueError, zlib.error, struct.error) as error:
            problems.append(f"{shot.name}: cannot be read ({error})")
            continue
        if share > MOST_OF_ONE_COLOUR:
            problems.append(f"{shot.name}: blank ({share:.1%} of it one colour)")
    if len(shots) < args.at_least:
        problems.append(f"the run wrote {len(shots)} screenshot(s) to {OUTPUT}, expected at least {args.at_least}")
    for problem in problems:
        print(f"check-screenshots: {problem}", file=sys.stderr)
    if not problems:
        print(f"check-screenshots: {len(shots)} screenshots, none blank")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
