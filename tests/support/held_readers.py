"""Reader processes stood in for by futures a test completes, so that every interleaving is chosen, not timed."""

from __future__ import annotations

import json
import time
from concurrent.futures import Future

from bodies import tool_conversation
from mitmproxy import http
from mitmproxy.test import tflow

from cachepin.worker import Readers, Reading, ReadJob, read


class HeldReaders(Readers):
    """Readers whose jobs wait until the test lets them go."""

    def __init__(self) -> None:
        super().__init__(1)
        self.readings: list[Reading] = []

    def submit(self, job: ReadJob) -> Reading | None:
        reading = Reading(job, Future(), self, time.monotonic())
        self.readings.append(reading)
        return reading

    @staticmethod
    def answer(reading: Reading) -> None:
        reading.future.set_result(read(reading.job))


def llm_flow(turn: int, session: str = "s1", read: int | None = None) -> http.HTTPFlow:
    """Turn ``turn`` of a conversation and its answer, which reads the cache from turn 2 on unless ``read`` says."""
    body = json.dumps(tool_conversation(turn)).encode()
    request = http.Request.make("POST", "https://api.example.com/v1/messages", body,
                                {"content-type": "application/json", "x-session-id": session})
    flow = tflow.tflow(req=request, resp=False)
    cached = (0 if turn == 1 else 100) if read is None else read
    usage = {"input_tokens": 5, "cache_creation_input_tokens": 100, "cache_read_input_tokens": cached,
             "output_tokens": 7}
    flow.response = http.Response.make(200, json.dumps({"type": "message", "model": "claude-sonnet-4-5",
                                                        "usage": usage}).encode(),
                                       {"content-type": "application/json"})
    return flow
