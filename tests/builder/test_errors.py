"""builder.errors: did-you-mean, how a variant error reads, and the exit status each error carries."""

from __future__ import annotations

from builder.compat import CompatError
from builder.errors import BuilderError, ErrorList, UsageError, VariantErrors, did_you_mean, redact
from builder.image.context import StagingError
from builder.image.docker import ImageError
from builder.output.render import RenderError


def test_did_you_mean():
    assert did_you_mean("quantizaton", ["quantization", "cuda"]) == "quantization"
    assert did_you_mean("WINT4", ["wint4", "wint8"]) == "wint4"
    assert did_you_mean("zzz", ["wint4"]) is None
    assert did_you_mean(3, ["3"]) is None


def test_a_variant_error_names_file_field_value_and_allowed():
    errors = ErrorList()
    errors.add(
        "variants/x.yaml", ("hub", "gpu_ids", 0), "is not a RunPod GPU pool", "ADA24", ["ADA_24", "AMPERE_24"]
    )
    errors.add("variants/x.yaml", ("title",), "is required", show_value=False)
    assert [str(e) for e in errors.errors] == [
        "variants/x.yaml: hub.gpu_ids[0]: 'ADA24' is not a RunPod GPU pool; allowed: ADA_24, AMPERE_24 "
        "(did you mean 'ADA_24'?)",
        "variants/x.yaml: title: is required",
    ]
    exc = VariantErrors(errors.errors)
    assert exc.lines()[-1] == "2 error(s); nothing was written"


def test_every_error_the_cli_reports_carries_its_exit_status():
    for cls in (UsageError, VariantErrors, RenderError, StagingError, CompatError):
        assert issubclass(cls, BuilderError) and cls.exit_code == 2, cls
    assert issubclass(ImageError, BuilderError) and ImageError.exit_code == 1
    assert ImageError("The registry refused.").lines() == ["error: The registry refused."]


def test_redact():
    assert redact("token hf_secret and pw", ["hf_secret", None, ""]) == "token *** and pw"
