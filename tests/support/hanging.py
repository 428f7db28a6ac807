"""A decoder that hangs in a reader process only (stopped, swapping, a pathological body), for tests of what the
proxy does about it. Importable by name, as a spawned process needs."""

from __future__ import annotations

import multiprocessing
import time


def hangs_in_a_worker(raw: bytes, coding: str) -> bytes:
    if multiprocessing.parent_process() is not None:
        time.sleep(3600)
    return raw
