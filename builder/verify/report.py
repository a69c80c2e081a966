"""The per-job report of `test` (local and endpoint alike) and its exit code."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TextIO

from builder.verify.answers import answer_problem
from builder.verify.jobs import JobResult, TestJob, brief, readable

PROGRESS_EVERY_S = 15.0  # without a terminal: one progress line this often


def job_line(result: JobResult) -> str:
    mark = "ok  " if result.ok else "FAIL"
    detail = brief(readable(result.output)) if result.ok else (result.error or "")
    return f"{mark} {result.name}  {result.status}  {result.seconds:.1f} s  {detail}"


def summary(results: Sequence[JobResult], say: Callable[[str], None]) -> int:
    """Print the summary line; 0 when every job passed, else 1."""
    failed = [r for r in results if not r.ok]
    say(f"{len(results) - len(failed)} of {len(results)} job(s) passed")
    return 1 if failed or not results else 0


def run_each(
    run: Callable[[TestJob], JobResult], tests: Sequence[TestJob], say: Callable[[str], None]
) -> list[JobResult]:
    """Every job through `run`, its line printed as it ends. A completed job whose answer is not what
    its input asked for (a structured output, a tool call: builder.verify.answers) fails."""
    results = []
    for job in tests:
        results.append(checked(job, run(job)))
        say(job_line(results[-1]))
    return results


def checked(job: TestJob, result: JobResult) -> JobResult:
    if not result.ok:
        return result
    problem = answer_problem(job.input, result.output)
    return result if problem is None else result.model_copy(update={"error": brief(problem, 300)})


class Progress:
    """One line that counts seconds on a terminal; a line every PROGRESS_EVERY_S elsewhere."""

    def __init__(self, out: TextIO, what: str) -> None:
        self.out, self.what, self.started, self.last = out, what, time.monotonic(), 0.0
        self.tty = out.isatty()

    def tick(self) -> None:
        took = time.monotonic() - self.started
        if self.tty:
            self.out.write(f"\r{self.what}: {took:.0f} s")
            self.out.flush()
        elif took - self.last >= PROGRESS_EVERY_S:
            self.last = took
            print(f"{self.what}: {took:.0f} s", file=self.out, flush=True)

    def done(self, text: str) -> None:
        if self.tty:
            self.out.write("\r")
        print(text, file=self.out, flush=True)
