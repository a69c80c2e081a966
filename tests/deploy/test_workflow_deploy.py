"""The example workflow's optional deploy job: after the pushes, only with DEPLOY_VARIANTS and the key."""

from __future__ import annotations

from pathlib import Path

import yaml

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "build-images.yml"


def test_deploy_job_runs_after_the_pushes_and_only_when_configured():
    job = yaml.safe_load(WORKFLOW.read_text())["jobs"]["deploy"]
    assert job["needs"] == "build"
    assert "vars.DEPLOY_VARIANTS" in job["if"]
    assert job["env"]["RUNPOD_API_KEY"] == "${{ secrets.RUNPOD_API_KEY }}"
    runs = [s for s in job["steps"] if "build.py deploy" in s.get("run", "")]
    assert len(runs) == 1 and runs[0]["if"] == "env.RUNPOD_API_KEY != ''"
    assert "RUNPOD_API_KEY" not in runs[0]["run"]  # the key is read from the environment, never argv
