"""The per-job report of `test` (local and endpoint alike) and its exit code."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from builder.verify.answers import answer_problem
from builder.verify.jobs import JobResult, TestJob, brief, readable


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
