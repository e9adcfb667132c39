"""make doctor: every key is probed for each permission its function needs, with calls that change
nothing; the emulator's key has them all, and a restricted key that lacks some is told which."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import stripe

from deploy import doctor
from devstack.stripe_emulator import StripeEmulator

OUTPUTS = [key.output for key in doctor.KEYS]
REFUSAL = "The provided key 'rk_test_***abcd' does not have the required permissions for this endpoint."


def client(api_base: str) -> stripe.StripeClient:
    return stripe.StripeClient("", base_addresses={"api": api_base}, max_network_retries=0)


def test_the_emulators_key_has_every_permission_and_nothing_changes(stripe_emulator: StripeEmulator) -> None:
    stripe_emulator.reset()
    keys = dict.fromkeys(OUTPUTS, stripe_emulator.api_key)

    lines = doctor.report(keys, client(stripe_emulator.api_base))

    assert [line.split()[0] for line in lines] == ["OK"] * len(doctor.KEYS), lines
    assert stripe_emulator.client().v1.checkout.sessions.list().data == []
    assert stripe_emulator.client().v1.events.list().data == []


def test_a_key_stripe_does_not_accept_is_reported_refused(stripe_emulator: StripeEmulator) -> None:
    lines = doctor.report({"StripeReadKeySecretArn": "rk_test_revoked"}, client(stripe_emulator.api_base))

    assert lines[-1].startswith("REFUSED StripeReadKeySecretArn (the webhook)")
    assert all(line.startswith("MISSING") and "is empty" in line for line in lines[:-1])


class RestrictedStripe:
    """Stripe as a restricted key meets it: 403 naming the permission for `refused` paths, else 404."""

    def __init__(self, refused: dict[str, str]) -> None:
        self.refused = refused
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?")[0]
                permission = next((p for prefix, p in outer.refused.items() if path.startswith(prefix)), None)
                if permission:
                    status, message = (
                        403,
                        f"{REFUSAL} Having the 'rak_{permission}' permission would allow it.",
                    )
                else:
                    status, message = 404, "No such object"
                body = json.dumps({"error": {"type": "invalid_request_error", "message": message}}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer  # noqa: N815

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> RestrictedStripe:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def restricted() -> Iterator[RestrictedStripe]:
    refused = {"/v1/events": "event_read", "/v1/payment_methods/": "payment_method_write"}
    with RestrictedStripe(refused) as server:
        yield server


def test_each_missing_permission_is_named_for_the_key_that_needs_it(restricted: RestrictedStripe) -> None:
    keys = dict.fromkeys(OUTPUTS, "rk_test_restricted")

    lines = {line.split()[1]: line for line in doctor.report(keys, client(restricted.url))}

    assert lines["StripeCardKeySecretArn"].endswith(
        "lacks: payment_method_write (Dashboard -> Developers -> API keys -> the restricted key -> Edit)"
    )
    assert "lacks: event_read " in lines["StripeApiKeySecretArn"]
    assert lines["StripeCheckoutKeySecretArn"].startswith("OK")
    assert lines["StripeReadKeySecretArn"].startswith("OK")


def test_every_permission_a_key_needs_has_a_probe() -> None:
    needed = {permission for key in doctor.KEYS for permission in key.permissions}

    assert needed == set(doctor.PROBES)


def test_without_a_region_doctor_says_how_to_name_one_instead_of_a_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a shell with no region anywhere botocore looks (environment, config file, profile)
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))

    # When make doctor runs
    status = doctor.main(["--stack-name", "credits"])

    # Then it says what is missing and how to give it, and exits 2
    out = capsys.readouterr().out
    assert status == 2
    assert out.startswith("No AWS region is set, so the stack credits cannot be found.")
    assert "AWS_REGION=us-east-1 make doctor" in out
    assert "Traceback" not in out


def test_the_trigger_and_the_sweep_have_keys_of_their_own_probed_for_what_each_calls(
    restricted: RestrictedStripe,
) -> None:
    keys = dict.fromkeys(OUTPUTS, "rk_test_restricted")

    lines = {line.split()[1]: line for line in doctor.report(keys, client(restricted.url))}

    assert "lacks: payment_method_write " in lines["StripeTriggerKeySecretArn"]
    assert lines["StripeApiKeySecretArn"].startswith("MISSING StripeApiKeySecretArn (the hourly sweep")
    assert "payment_method_write" not in lines["StripeApiKeySecretArn"]
