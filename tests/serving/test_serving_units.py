"""In-process checks of serving pieces that HTTP tests reach only with huge or hostile inputs."""

from __future__ import annotations

import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from doodle.model.model_io import ModelFileError
from doodle.paths import ROOT
from serving import messages
from serving.config import DEFAULT_MAX_BATCH
from serving.errors import describe_validation_error
from serving.main import public_reason
from serving.middleware import _method_label
from serving.routes import _public_source
from serving.schemas import BatchPredictRequest


def test_an_oversized_batch_fails_validation_at_the_cap_with_its_own_message():
    with pytest.raises(ValidationError) as caught:
        BatchPredictRequest.model_validate({"image_vectors": [[0.5] * 784] * (DEFAULT_MAX_BATCH + 1)})
    errors = caught.value.errors()
    assert errors[0]["type"] == "too_long"
    status, detail = describe_validation_error(
        RequestValidationError([{**errors[0], "loc": ("body", *errors[0]["loc"])}])
    )
    assert (status, detail) == (422, messages.BATCH_TOO_LARGE.format(limit=DEFAULT_MAX_BATCH))


def test_client_facing_reasons_carry_no_server_directories():
    reason = public_reason(ModelFileError("model file not found: /srv/secret/place/models/mlp.npz"))
    assert reason == "ModelFileError: model file not found: mlp.npz"
    uri = public_reason(ValueError("no version at models:/doodle-mlp@champion"))
    assert uri == "ValueError: no version at models:/doodle-mlp@champion"


def test_model_source_is_relative_to_the_project_or_just_a_name():
    assert _public_source(str(ROOT / "models")) == "models"
    assert _public_source("/srv/elsewhere/mlp.npz") == "mlp.npz"
    assert _public_source("models:/doodle-mlp@champion") == "models:/doodle-mlp@champion"


def test_unknown_http_methods_share_one_metric_label():
    assert _method_label("POST") == "POST"
    assert {_method_label(m) for m in ("FOO", "BAR1", "get")} == {"other"}
