"""The ingress under hostile requests (a bounded run; ``bench/fuzz.py`` runs 100,000 cases): whatever
arrives, no 5xx, nothing unsigned is published, every 200 names the one record it published."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzzing import FuzzRequest, Ingress, requests


@pytest.fixture(scope="module")
def ingress(tmp_path_factory: pytest.TempPathFactory) -> Ingress:
    return Ingress.build(tmp_path_factory.mktemp("fuzz"))


@settings(max_examples=5_000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(request=requests())
def test_hostile_requests_get_no_5xx_and_publish_only_what_is_signed(ingress: Ingress, request: FuzzRequest) -> None:
    ingress.check(request)


def test_the_run_reached_every_kind_of_answer(ingress: Ingress) -> None:
    """The generator is only worth its properties if it gets past each check: accepted, refused as
    unsigned, as malformed, as unknown."""
    answers = ingress.answers
    assert answers.get(200, 0) > 0, answers
    assert answers.get(401, 0) > 0, answers
    assert answers.get(400, 0) + answers.get(415, 0) > 0, answers
    assert answers.get(404, 0) + answers.get(405, 0) > 0, answers
