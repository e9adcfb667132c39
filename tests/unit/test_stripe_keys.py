"""Each Stripe key allows what its function calls and no more: every Stripe call reachable from a function's
handler, followed through the product's own modules, needs a permission its key's entry of
`deploy.doctor.KEYS` names, and every permission named there is needed. The same list is the README's
table and what `make doctor` probes, and template.yaml hands each function that key's secret."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy import doctor
from devstack.template import load

ROOT = Path(__file__).resolve().parents[2]
WALLET = ROOT / "layers" / "shared" / "wallet"
README = (ROOT / "README.md").read_text(encoding="utf-8")

# Stripe's restricted keys: reading a resource needs its `_read` permission, creating, updating or acting
# on it (detach, expire, cancel) its `_write` (docs.stripe.com/keys#limit-access). Written apart from the
# code: the SDK's resource path and method -> the permission Stripe asks of the key.
PERMISSION_OF_CALL = {
    "checkout.sessions.create": "checkout_session_write",
    "checkout.sessions.expire": "checkout_session_write",
    "checkout.sessions.retrieve": "checkout_session_read",
    "checkout.sessions.list": "checkout_session_read",
    "charges.list": "charge_read",
    "invoices.retrieve": "invoice_read",
    "customers.create": "customer_write",
    "customers.update": "customer_write",
    "payment_intents.create": "payment_intent_write",
    "payment_intents.cancel": "payment_intent_write",
    "payment_intents.retrieve": "payment_intent_read",
    "payment_methods.detach": "payment_method_write",
    "refunds.list": "refund_read",
    "events.list": "event_read",
    "events.retrieve": "event_read",
}
STRIPE_CALL = re.compile(r"\.v1\.(?P<call>[a-z_]+(?:\.[a-z_]+)+)$")
OWNER = re.compile(r"(wallet\.\w+):(\w+)")

# Where each function starts: its handler's module and the definitions Lambda or the resolver calls.
# The auto top-up module holds two handlers: the card routes (every route the resolver registers) and the
# stream's trigger.
ROUTES = "routes"
ENTRIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "CreateCheckoutFunction": ("functions/create_checkout/app.py", (ROUTES,)),
    "AutoTopUpFunction": ("functions/auto_top_up/app.py", (ROUTES,)),
    "AutoTopUpTriggerFunction": ("functions/auto_top_up/app.py", ("stream_handler",)),
    "ReconcileFunction": ("functions/reconcile/app.py", ("lambda_handler",)),
    "StripeWebhookFunction": ("functions/stripe_webhook/app.py", (ROUTES,)),
    "StripeEventsFunction": ("functions/stripe_webhook/app.py", ("eventbridge_handler",)),
}
Node = tuple[str, str]  # (module, top-level name)


def module_name(path: Path) -> str:
    return f"wallet.{path.stem}" if path.parent == WALLET else str(path.relative_to(ROOT))


def modules() -> dict[str, ast.Module]:
    paths = [*WALLET.glob("*.py"), *(ROOT / "functions").glob("*/app.py")]
    return {module_name(path): ast.parse(path.read_text(encoding="utf-8")) for path in paths}


class CallGraph:
    """What each top-level definition of the product refers to (calls, passes or names as `module:function`),
    over-approximated by name: a class is one node with all its methods."""

    def __init__(self) -> None:
        self.trees = modules()
        self.edges: dict[Node, set[Node]] = {}
        self.stripe_calls: dict[Node, set[str]] = {}
        for module, tree in self.trees.items():
            imported = self._imports(module, tree)
            for definition in tree.body:
                # A module-level name (a table of owners, a constant) is a node too: what reads it leads on.
                for name in _defined(definition):
                    node = (module, name)
                    self.edges[node] = set(self._references(module, definition, imported))
                    self.stripe_calls[node] = set(self._calls(definition))

    def _imports(self, module: str, tree: ast.Module) -> dict[str, Node | str]:
        """Names bound by `from wallet import x` (a module) or `from wallet.x import y` (a definition)."""
        found: dict[str, Node | str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("wallet"):
                for alias in node.names:
                    name = alias.asname or alias.name
                    if node.module == "wallet":
                        found[name] = f"wallet.{alias.name}"
                    else:
                        found[name] = (node.module, alias.name)
        return found

    def _references(
        self, module: str, definition: ast.AST, imported: dict[str, Node | str]
    ) -> Iterator[Node]:
        local = {name for d in self.trees[module].body for name in _defined(d)}
        for node in ast.walk(definition):
            if isinstance(node, ast.Name):
                if node.id in local:
                    yield (module, node.id)
                target = imported.get(node.id)
                if isinstance(target, tuple):
                    yield target
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                target = imported.get(node.value.id)
                if isinstance(target, str):
                    yield (target, node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                for owner in OWNER.finditer(node.value):
                    yield (owner[1], owner[2])

    def _calls(self, definition: ast.AST) -> Iterator[str]:
        for node in ast.walk(definition):
            if isinstance(node, ast.Call):
                found = STRIPE_CALL.search(ast.unparse(node.func))
                if found:
                    yield found["call"]

    def entries(self, function: str) -> set[Node]:
        path, names = ENTRIES[function]
        module = module_name(ROOT / path)
        roots = {(module, name) for name in names if name != ROUTES}
        if ROUTES in names:
            for definition in self.trees[module].body:
                if isinstance(definition, ast.FunctionDef) and any(
                    ast.unparse(d).startswith("app.") for d in definition.decorator_list
                ):
                    roots.add((module, definition.name))
        return roots

    def stripe_calls_from(self, function: str) -> set[str]:
        seen: set[Node] = set()
        todo = list(self.entries(function))
        while todo:
            node = todo.pop()
            if node in seen or node not in self.edges:
                continue
            seen.add(node)
            todo.extend(self.edges[node])
        return set().union(*(self.stripe_calls[node] for node in seen))


def _defined(statement: ast.stmt) -> set[str]:
    """The names a module-level statement defines: a function, a class, or assigned names."""
    if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {statement.name}
    if isinstance(statement, ast.Assign | ast.AnnAssign):
        targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
        return {t.id for t in targets if isinstance(t, ast.Name)}
    return set()


GRAPH = CallGraph()
KEY_OF = {function: key for key in doctor.KEYS for function in key.functions}


def test_every_stripe_call_of_the_product_has_a_known_permission() -> None:
    calls = set().union(*GRAPH.stripe_calls.values())

    assert calls, "the scan finds the product's Stripe calls"
    assert calls - set(PERMISSION_OF_CALL) == set(), "a Stripe call this table does not map"


def test_every_function_that_calls_stripe_has_a_key_and_every_key_a_function() -> None:
    calling = {function for function in ENTRIES if GRAPH.stripe_calls_from(function)}

    assert calling == set(KEY_OF)
    assert set(ENTRIES) == set(KEY_OF)


@pytest.mark.parametrize("function", sorted(ENTRIES))
def test_each_key_allows_exactly_what_its_function_calls(function: str) -> None:
    needed = {PERMISSION_OF_CALL[call] for call in GRAPH.stripe_calls_from(function)}

    assert needed == set(KEY_OF[function].permissions), KEY_OF[function].output


def test_the_scan_follows_calls_into_the_domain_modules() -> None:
    # The trigger's only Stripe calls are two modules away from its handler (app -> auto_top_up -> payments).
    assert GRAPH.stripe_calls_from("AutoTopUpTriggerFunction") == {
        "payment_intents.create",
        "payment_methods.detach",
    }


@pytest.mark.parametrize("key", doctor.KEYS, ids=lambda key: key.output)
def test_the_template_gives_each_function_its_keys_secret_and_no_other(key: doctor.Key) -> None:
    template = load()
    resources = template["Resources"]
    secret = key.output.removesuffix("Arn")
    for function in key.functions:
        variables = resources[function]["Properties"]["Environment"]["Variables"]
        reads_only = function in ("StripeWebhookFunction", "StripeEventsFunction")
        variable = "STRIPE_READ_KEY_ARN" if reads_only else "STRIPE_SECRET_KEY_ARN"
        assert variables[variable] == {"Fn::If": [f"Create{secret}", {"Ref": secret}, {"Ref": key.output}]}
    assert template["Outputs"][key.output]["Value"] == {
        "Fn::If": [f"Create{secret}", {"Ref": secret}, {"Ref": key.output}]
    }
    assert key.output in template["Parameters"]


def readme_key_table() -> dict[str, tuple[str, set[str]]]:
    """The README's table of keys: secret -> (used by, the permissions' codes in backticks)."""
    rows = {}
    for line in README.splitlines():
        found = re.match(r"\| `(Stripe\w+SecretArn)` \| ([^|]+) \| ([^|]+) \|$", line)
        if found and "rak_" not in found[3] and "_" in found[3]:
            rows[found[1]] = (found[2].strip(), set(re.findall(r"`([a-z_]+)`", found[3])))
    return rows


def test_the_readme_lists_each_key_with_exactly_its_permissions() -> None:
    table = readme_key_table()

    assert set(table) == {key.output for key in doctor.KEYS}
    for key in doctor.KEYS:
        assert table[key.output][1] == set(key.permissions), key.output


def deploy_section() -> str:
    return README.split("\n## Deploy to AWS\n", 1)[1].split("\n## ", 1)[0]


def test_the_readme_counts_the_blank_secrets_the_stack_makes() -> None:
    blank = [
        name
        for name, resource in load()["Resources"].items()
        if resource["Type"] == "AWS::SecretsManager::Secret"
        and resource["Properties"].get("SecretString") == " "
    ]
    words = {5: "five", 6: "six", 7: "seven"}

    assert len(blank) == len(doctor.KEYS) + 1  # a key per function that calls Stripe, and the signing secret
    assert f"{words[len(blank)]} blank Secrets Manager" in " ".join(deploy_section().split())


def test_the_readme_parameter_table_names_every_parameter_of_the_template() -> None:
    rows = [line for line in deploy_section().splitlines() if line.startswith("| `")]
    named = set(re.findall(r"`([A-Z]\w+)`", "\n".join(row.split(" | ")[0] for row in rows)))

    assert set(load()["Parameters"]) - named == set()
