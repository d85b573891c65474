"""``shim.ids``: random ids come from ``os.urandom`` read 4 KiB at a time (issue 18). Each byte is
handed out once: across refills, across threads, and a forked worker never repeats its parent."""

from __future__ import annotations

import os
import re
import threading

import pytest

from shim.ids import RandomIds, random_hex


@pytest.mark.parametrize(
    ("n", "shape"), [(24, r"[0-9a-f]{48}"), (16, r"[0-9a-f]{32}"), (5000, r"[0-9a-f]{10000}")]
)
def test_shape(n: int, shape: str) -> None:
    assert re.fullmatch(shape, random_hex(n))


def test_ids_are_openai_shaped() -> None:
    assert re.fullmatch(r"resp_[0-9a-f]{48}", RandomIds()("resp"))


def test_no_repeats_across_refills() -> None:
    ids = [random_hex(24) for _ in range(2000)]  # ~12 refills of the pool
    assert len(set(ids)) == len(ids)


def test_no_repeats_across_threads() -> None:
    seen: list[str] = []

    def draw() -> None:
        seen.extend(random_hex(24) for _ in range(500))

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(seen)) == len(seen) == 2000


def test_a_forked_child_does_not_repeat_its_parent() -> None:
    random_hex(1)  # the pool holds bytes the parent has not handed out yet
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, then out
        os.close(read)
        os.write(write, random_hex(24).encode())
        os._exit(0)
    os.close(write)
    try:
        child = os.read(read, 100).decode()
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    assert re.fullmatch(r"[0-9a-f]{48}", child)
    assert child != random_hex(24)
