"""The load generator's processes, seen from the coordinator: start them, send each a command, gather answers.

Each worker (``bench.worker``) is a separate process with its own event loop, so the clients use more than one
core and are not the bottleneck of a single-process server. Workers are daemons and are ended on ``close``: none
outlives the run.
"""

import contextlib
import multiprocessing
import time
from typing import Any

import psutil

from . import worker


class WorkerError(RuntimeError):
    """A worker answered a command with a traceback, or did not answer in time."""


class Swarm:
    def __init__(self, processes: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes = []
        self.processes = []
        for _ in range(processes):
            parent, child = context.Pipe()
            process = context.Process(target=worker.main, args=(child,), daemon=True, name="bench-worker")
            process.start()
            child.close()
            self.pipes.append(parent)
            self.processes.append(process)

    def __len__(self) -> int:
        return len(self.processes)

    def send(self, commands: list[dict[str, Any]]) -> None:
        """Send command i to worker i (a worker with no command gets none)."""
        for pipe, command in zip(self.pipes, commands, strict=False):
            pipe.send(command)

    def gather(self, count: int, timeout: float) -> list[Any]:
        """The answers of the first ``count`` workers, in order; raises WorkerError past ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        answers = []
        for index, pipe in enumerate(self.pipes[:count]):
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise WorkerError(f"worker {index} did not answer within {timeout:.0f} s")
            answer = pipe.recv()
            if "error" in answer:
                raise WorkerError(f"worker {index} failed:\n{answer['error']}")
            answers.append(answer["ok"])
        return answers

    def call(self, commands: list[dict[str, Any]], timeout: float) -> list[Any]:
        self.send(commands)
        return self.gather(len(commands), timeout)

    def call_all(self, command: dict[str, Any], timeout: float) -> list[Any]:
        return self.call([dict(command) for _ in self.pipes], timeout)

    def cpu_seconds(self) -> float:
        total = 0.0
        for process in self.processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = psutil.Process(process.pid).cpu_times()
                total += times.user + times.system
        return total

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):  # a worker already gone
                pipe.send({"op": "exit"})
        deadline = time.monotonic() + 5
        for process in self.processes:
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                process.terminate()
                process.join(2)
            if process.is_alive():
                process.kill()
                process.join(1)
        for pipe in self.pipes:
            pipe.close()
