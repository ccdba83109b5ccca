"""The REST API against the OpenAPI document it serves (made from the same models as its requests and
answers), fuzzed with schemathesis under a real JupyterHub: no answer is a 500, and every answer — its
status, content type and body — is what the document says."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import fields
from typing import Any

import pytest
import schemathesis
import schemathesis.specs.openapi.checks as openapi_checks
from hypothesis import HealthCheck, settings

from clauderon_nb.model.session import Session, Status
from clauderon_nb.remote.openapi import ErrorAnswer, SessionAnswer, openapi_document
from clauderon_nb.remote.wire import ERRORS

from . import hubkit

PREFIX = "/services/clauderon/api/v1"
schema = schemathesis.openapi.from_dict(openapi_document(PREFIX))


def test_the_document_names_every_error_kind_and_status() -> None:
    kinds = ErrorAnswer.model_json_schema()["properties"]["error"]["enum"]
    assert sorted(kinds) == sorted(ERRORS)
    session = SessionAnswer.model_json_schema()
    status = session["properties"]["status"]
    assert session["$defs"][status["$ref"].rsplit("/", 1)[1]]["enum"] == [s.value for s in Status]
    assert list(session["properties"]) == [f.name for f in fields(Session)]  # the record's own fields


@pytest.mark.docker
@pytest.mark.hub
def test_the_service_serves_its_document(hub: hubkit.Hub) -> None:
    with urllib.request.urlopen(hub.service_url + "api/v1/openapi.json", timeout=20) as response:
        served = json.loads(response.read())
    assert served == json.loads(json.dumps(openapi_document(PREFIX)))


@pytest.mark.docker
@pytest.mark.hub
@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_the_api_matches_its_document(case: Any, hub: hubkit.Hub) -> None:
    base = hub.service_url.rstrip("/").removesuffix("/services/clauderon") + PREFIX
    case.call_and_validate(
        base_url=base,
        headers={"Authorization": f"token {hub.tokens['bob']}"},
        timeout=30,
        # The service checks more than JSON Schema can say (an image's grammar, one of two spellings, a
        # policy), so schema-valid data may be refused with a 4xx and its one-line reason; every other
        # check stands: no 5xx, documented statuses, content types, bodies and headers, 401 without a token.
        excluded_checks=[openapi_checks.positive_data_acceptance, openapi_checks.negative_data_rejection],
    )
