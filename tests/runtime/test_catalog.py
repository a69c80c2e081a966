"""The settings catalogue is the one home of each setting: the Settings fields and their defaults, the
engine's environment and the release checks all follow from its entries' attributes."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

from worker_runtime.config.catalog import SETTINGS, Setting, Settings, typed_default
from worker_runtime.config.engine_args import settings_env
from worker_runtime.config.release import load_flag_table, release_problems
from worker_runtime.config.settings import load_settings


def test_settings_has_one_field_per_setting_with_its_catalogue_default():
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    assert list(fields) == [s.env.lower() for s in SETTINGS]
    for s in SETTINGS:
        if s.required:
            assert fields[s.env.lower()].default is dataclasses.MISSING
        else:
            assert fields[s.env.lower()].default == typed_default(s), s.env


def test_an_unset_setting_takes_its_catalogue_default():
    loaded = load_settings({"MODEL": "m"})
    for s in SETTINGS:
        if s.env not in ("MODEL", "MAX_CONCURRENCY", "MODEL_CACHE_DIR"):  # derived at load
            assert loaded.value(s.env) == typed_default(s), s.env


def test_a_new_engine_env_setting_is_written_from_its_entry_alone():
    planted = (
        Setting("NEW_KNOB", "bool", "x", engine_env="FD_KNOB", engine_env_words=((True, "1"), (False, None))),
        Setting("NEW_NAME", "str", "x", engine_env="FD_NEW_NAME"),
    )
    on = SimpleNamespace(value=lambda env: {"NEW_KNOB": True, "NEW_NAME": "n"}[env])
    off = SimpleNamespace(value=lambda env: {"NEW_KNOB": False, "NEW_NAME": None}[env])
    assert settings_env(on, planted) == {"FD_KNOB": "1", "FD_NEW_NAME": "n"}
    assert settings_env(off, planted) == {}


def test_release_checks_follow_attributes_not_names():
    table = load_flag_table()
    release = {**table["releases"]["2.5.0"]}
    flags = {k: v for k, v in release["flags"].items() if k != "--tensor-parallel-size"}
    lacking = {**release, "flags": flags}
    # A release without the flag still runs what the engine does without it (engine_default) ...
    assert release_problems({"tensor_parallel_size": 1}, lacking, "x") == []
    # ... and nothing else.
    (problem,) = release_problems({"tensor_parallel_size": 2}, lacking, "x")
    assert "TENSOR_PARALLEL_SIZE=2" in problem and "--tensor-parallel-size" in problem
    # A false written to the engine's environment needs no negative flag form.
    assert release_problems({"enable_chunked_prefill": False}, release, "2.5.0") == []
