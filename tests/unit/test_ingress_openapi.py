"""schemathesis drives the ingress app from its OpenAPI document: no input yields a 5xx."""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hookstream_services.ingress.app import create_app
from hookstream_services.ingress.config import load_config
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.signing import write_config
from tests.unit.test_ingress_app import FakePublisher

with tempfile.TemporaryDirectory() as _tmp:
    app = create_app(load_config(write_config(Path(_tmp) / "hookstream.toml")), FakePublisher())
schema = schemathesis.openapi.from_asgi("/openapi.yaml", app)
CHANNELS = sorted(app.state.ingress.channels)


@schema.parametrize()
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_yields_a_server_error(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=[not_a_server_error])
    if case.path_parameters and "channel" in case.path_parameters:
        # Random names mostly meet the 404; send the same request to every real channel adapter too.
        for channel in CHANNELS:
            case.path_parameters["channel"] = channel
            case.call_and_validate(checks=[not_a_server_error])
