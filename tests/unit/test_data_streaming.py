"""A mix over a file of millions of lines streams: resident memory stays bounded (the file is never
loaded whole). The 2 GB measurement lives in benchmarks/mix_streaming.py."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from tunesmith.data.mixing import CUSTOMER, CustomerData, MixSpec, mix, rows_source

LINES = 2_000_000
MIB = 1024 * 1024


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_mix_of_two_million_lines_stays_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    with open(path, "wb") as handle:
        for start in range(0, LINES, 100_000):
            handle.write(b"".join(b'{"text": "doc %07d"}\n' % i for i in range(start, start + 100_000)))
    size = path.stat().st_size
    # held as Python objects, the file would take ~10x its size; the mix may use a small fraction of it
    general = {
        "web": rows_source("web", lambda epoch: ({"text": f"general {i}"} for i in itertools.count()), "cpt")
    }
    spec = MixSpec(
        customer_percent=95,
        general={"web": 100},
        unit="examples",
        sampling="without_replacement",
        max_general_repeats=4,
        quality_tail_percent=0.0,
    )

    before = rss_bytes()
    mixture = mix(CustomerData(path, shuffle_buffer=10_000), general, spec, seed=0)
    peak = rss_bytes()  # after the streaming pre-scan (freed small objects are rarely returned to the OS)
    count = customer = 0
    for count, example in enumerate(mixture, start=1):
        customer += example.source == CUSTOMER
        if count % 200_000 == 0:
            peak = max(peak, rss_bytes())
    peak = max(peak, rss_bytes())

    assert customer == LINES and count == round(LINES / 0.95)
    growth = peak - before
    assert size > 35 * MIB
    assert growth < 64 * MIB, (
        f"resident memory grew by {growth / MIB:.0f} MiB over a {size / MIB:.0f} MiB file"
    )
