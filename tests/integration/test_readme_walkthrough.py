"""The README's "Try it", as a newcomer runs it: its shell blocks, against `make run`'s stack, from sign-in
through a paid top-up to a spend signed by curl --aws-sigv4 with the key pair the stack printed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.devstack_process import ROOT, DevStackProcess

README = (ROOT / "README.md").read_text(encoding="utf-8")
PAIR = re.compile(r"access key (?P<key>AKIALOCAL\w+), secret (?P<secret>\S+)")


def try_it_blocks() -> list[str]:
    section = README.split("\n## Try it\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_readme_leads_from_sign_in_to_a_spend_signed_by_curl(tmp_path: Path) -> None:
    top_up, spend, audit = try_it_blocks()[:3]
    assert "make audit" in audit

    with DevStackProcess({"DEVSTACK_RUN_FILE": str(tmp_path / "run.json")}) as stack:
        pair = PAIR.search(stack.log())
        assert pair, stack.log()
        # What a person does by hand: their stack's address, the Checkout URL it answered, the pair it printed
        script = "\n".join(
            [
                "set -euo pipefail",
                "URL_OF='import json,sys; print(json.load(sys.stdin)[\"url\"])'",
                top_up.replace(
                    "curl -s -X POST $API/api/checkout", "CHECKOUT=$(curl -s -X POST $API/api/checkout"
                )
                .replace("-d '{\"amount\": 5000}'\n", "-d '{\"amount\": 5000}')\n", 1)
                .replace(
                    '"<url>/pay"',
                    '"$(echo "$CHECKOUT" | python3 -c "$URL_OF")/pay"',
                ),
                # The webhook credits the payment a moment after Pay answers; a person reloads the page.
                'for _ in $(seq 100); do curl -s $API/api/balance -H "Authorization: Bearer $TOKEN" '
                "| grep -q '\"balance\": *5000' && break; sleep 0.1; done",
                spend.replace("AKIALOCAL…", pair["key"]).replace(
                    "AWS_SECRET_ACCESS_KEY=…", f"AWS_SECRET_ACCESS_KEY={pair['secret']}"
                ),
            ]
        ).replace("http://127.0.0.1:3000", stack.url)
        run = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120, check=False)

    assert run.returncode == 0, run.stderr
    assert '{"transactionId"' in run.stdout, run.stdout
    answer = json.loads(run.stdout[run.stdout.rindex('{"transactionId"') :])
    assert (answer["userId"], answer["amount"], answer["balance"]) == ("alice", 250, 4750), run.stdout
