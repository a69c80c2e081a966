"""The soak's verdicts can fail: a lost, duplicated or unexplained token or job is named as such."""

from __future__ import annotations

import json
import sys

from tests.runtime.fake_platform import Job, Post

from .conftest import REPO

sys.path[:0] = [str(REPO / "bench")]

import soak  # noqa: E402
import soak_faults  # noqa: E402
from soak_faults import Plan, Verdict  # noqa: E402

TOKENS = 4


def post(*stamps: float) -> Post:
    # A native stream output as the SDK posts it: each token "tok<emission time>".
    text = "".join(f"tok<{s:.6f}>" for s in stamps)
    return Post(0.0, {}, {}, json.dumps({"output": {"choices": [{"delta": {"content": text}}]}}))


def job(stream: list[Post], result: object = None) -> Job:
    j = Job("job-1", {})
    j.stream = stream
    if result is not None:
        j.result = Post(0.0, {}, {}, json.dumps(result))
    return j


def aggregate(*stamps: float) -> dict[str, object]:
    return {"output": [json.loads(post(s).body)["output"] for s in stamps]}


ALL = (1.0, 2.0, 3.0, 4.0)


def verdict(
    j: Job, plan: Plan | None = None, refused: list[str] | None = None, stopped: bool = False
) -> Verdict:
    return soak_faults.check_job(j, plan or Plan(), refused or [], stopped, TOKENS)


def test_a_complete_job_is_ok() -> None:
    v = verdict(job([post(1, 2), post(3, 4)], aggregate(*ALL)))
    assert (v.outcome, v.delivered, v.dropped) == ("ok", 4, 0)


def test_a_token_missing_from_the_stream_is_lost_unless_a_refused_post_held_it() -> None:
    j = job([post(1, 2), post(4)], aggregate(*ALL))
    assert verdict(j).outcome == "lost"
    v = verdict(j, refused=[post(3).body])
    assert (v.outcome, v.dropped) == ("ok", 1)


def test_duplicated_or_reordered_tokens_are_lost() -> None:
    assert verdict(job([post(1, 2), post(2, 3, 4)], aggregate(*ALL))).outcome == "lost"
    assert verdict(job([post(2, 1), post(3, 4)], aggregate(*ALL))).outcome == "lost"


def test_an_aggregate_short_of_a_token_is_lost() -> None:
    assert verdict(job([post(1, 2), post(3)], aggregate(1, 2, 3))).outcome == "lost"


def test_an_engine_error_counts_only_when_injected_and_after_every_token_before_it() -> None:
    error = {"error": json.dumps({"message": f"{soak_faults.ENGINE_ERROR} (FD_STANDIN_ERROR_MID_STREAM)"})}
    plan = Plan(error_after=2)
    assert verdict(job([post(1, 2)], error), plan).outcome == "engine error"
    assert verdict(job([post(1)], error), plan).outcome == "lost"
    assert verdict(job([post(1, 2)], error)).outcome == "unexplained error"
    assert verdict(job([post(1, 2)], {"error": "Lost the connection"}), plan).outcome == "unexplained error"
    assert verdict(job([post(1, 2), post(3, 4)], aggregate(*ALL)), plan).outcome == "unexplained success"


def test_a_job_without_result_is_stuck_unless_it_was_stopped() -> None:
    assert verdict(job([post(1)])).outcome == "stuck"
    assert verdict(job([post(1)]), stopped=True).outcome == "cancelled"


def test_leaked_tasks_leave_the_sdks_polls_aside() -> None:
    idle = {"JobScaler.get_jobs": 1, "_close_at_loop_end": 1}
    assert soak.leaked_tasks({"JobScaler.get_jobs": 1, "get_job": 1, "get_stop_signals": 1}, idle) == {}
    assert soak.leaked_tasks({"JobScaler.handle_job": 2, "get_job": 2}, idle) == {
        "JobScaler.handle_job": 2,
        "get_job": 1,
    }
