"""env.json gives `sam local invoke --env-vars` exactly the settings template.yaml gives each function."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devstack.template import load, resources

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = sorted(resources("AWS::Serverless::Function"))


def template_settings(function: str) -> set[str]:
    shared = load()["Globals"]["Function"]["Environment"]["Variables"]
    own = resources("AWS::Serverless::Function")[function]["Properties"].get("Environment", {})
    return set(shared) | set(own.get("Variables", {}))


def test_env_json_names_every_function() -> None:
    assert sorted(json.loads((ROOT / "env.json").read_text())) == FUNCTIONS


@pytest.mark.parametrize("function", FUNCTIONS)
def test_env_json_gives_each_function_the_settings_of_the_template(function: str) -> None:
    local = json.loads((ROOT / "env.json").read_text())[function]

    assert set(local) == template_settings(function)


@pytest.mark.parametrize("sample", sorted(p.name for p in (ROOT / "events").glob("api_*.json")))
def test_sample_events_are_the_events_of_their_api(sample: str) -> None:
    event = json.loads((ROOT / "events" / sample).read_text())
    if "httpMethod" in event:  # the service API, a REST API: payload format 1.0
        assert event["requestContext"]["resourcePath"] == event["resource"]
        assert event["requestContext"]["httpMethod"] == event["httpMethod"]
        assert event["requestContext"]["identity"]["userArn"].startswith("arn:aws:iam::")
        assert event["path"].startswith(event["resource"].split("{")[0])
        return

    assert event["version"] == "2.0"
    assert event["routeKey"] == event["requestContext"]["routeKey"]
    method, path = event["routeKey"].split(" ", 1)
    assert event["rawPath"].startswith(path.split("{")[0])
    assert event["requestContext"]["http"]["method"] == method
    assert {"rawPath", "rawQueryString", "headers", "isBase64Encoded"} <= set(event)
