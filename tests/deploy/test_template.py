"""The packaged CloudFormation template of each stage, as `make package` builds it:
cfn-lint clean; the table exactly as the PynamoDB models declare it; the renewal queue, its
dead-letter queue and the schedule; every function given the environment chalicelib/config.py
reads; and roles that allow every AWS request the service was seen to make, on its own table
and queue only, and nothing more of DynamoDB or SSM."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from infra import package
from tests.deploy.cfn import (
    ACCOUNT, PARTITION, REGION, allows, as_list, check_simple, granted_actions, resources_for,
)
from tests.deploy.conftest import ROOT, STAGES

CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())
# Chalice's name of each function (config.json `lambda_functions`) -> its logical id.
LOGICAL_IDS = {"api_handler": "APIHandler", "daily_renewal": "DailyRenewal", "renewal_batch": "RenewalBatch"}

# Variables chalicelib/config.py reads that no deployed function is given, and why.
NOT_DEPLOYED = {
    "AWS_REGION": "set by the Lambda runtime",
    "AWS_DEFAULT_REGION": "set by the Lambda runtime",
    "AWS_LAMBDA_FUNCTION_NAME": "set by the Lambda runtime (how the code knows it runs deployed)",
    "DYNAMODB_ENDPOINT": "the embedded local store only",
    "STANDIN_DELIVERY": "the local Stripe stand-in only",
    "AUTH_DEV_SECRET": "HS256 dev tokens, local runs only: deployed stages verify RS256 tokens against AUTH_JWKS_URL",
    "MAX_BODY_BYTES": "optional: the default (64 KiB) is the deployed limit",
}
# Secrets: never a plain environment value in a deployed stage. The API handler (the only function
# that talks to Stripe) is given instead the names of the SSM SecureString parameters that
# chalicelib/config.py reads at cold start (config.SSM_SECRETS: name variable -> secret variable).
SECRET_READERS = {"APIHandler"}

# Requests the recorded flows made that the Lambda role must NOT be allowed, and why.
NOT_FROM_LAMBDA = {
    "dynamodb:Scan": "ledger.audit() (`cli audit`) reads the whole table from an operator's machine, "
                     "with the operator's credentials",
    "dynamodb:CreateTable": "models.create_table() and test fixtures: deployed tables come from infra/resources.json",
    "dynamodb:DescribeTable": "models.create_table() (Wallet.exists()) and test fixtures",
    "dynamodb:DeleteTable": "test fixtures",
}
STANDIN_ONLY = {
    "dynamodb:Scan": "the Stripe stand-in's portal page and clock: served only without a Stripe key, "
                     "which deployed stages read from SSM",
}
# What Lambda's SQS poller does with the function's role for the queue event source.
SQS_EVENT_SOURCE_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")


def stage_env(stage: str) -> dict[str, str]:
    return package.stage_environment(stage)


def table_of(t):
    tables = t.of_type("AWS::DynamoDB::Table")
    assert list(tables) == ["CreditsTable"], f"one table, CreditsTable: {list(tables)}"
    return tables["CreditsTable"]


@pytest.fixture(params=STAGES)
def stage(request):
    return request.param


@pytest.fixture
def pkg(packaged, stage):
    return packaged[stage]


# --- lint -------------------------------------------------------------------------------------------

def test_cfn_lint_passes(pkg):
    assert pkg.lint.returncode == 0, f"cfn-lint {pkg.path}:\n{pkg.lint.stdout}{pkg.lint.stderr}"
    assert pkg.lint.stdout.strip() == ""


def test_every_policy_action_is_a_real_iam_action(pkg):
    """cfn-lint does not check actions in inline role policies: a made-up action such as
    dynamodb:TransactWriteItems (AWS checks PutItem/UpdateItem/... per item) passes it."""
    import cfnlint.data.AdditionalSpecs as specs

    known = json.loads((Path(specs.__file__).parent / "Policies.json").read_text())
    for function in pkg.template.functions():
        for s in pkg.template.statements_of(function):
            for action in as_list(s["Action"]):
                service, name = action.split(":")
                assert "*" not in name, f"{function}: wildcard action {action}"
                assert name.lower() in known[service]["Actions"], f"{function}: {action} is not an IAM action"


# --- the table --------------------------------------------------------------------------------------

def model_schema() -> dict:
    """Keys and indexes of every model bound to the table (all of them: one table)."""
    from chalicelib.credits import models

    def every(cls):
        yield cls
        for sub in cls.__subclasses__():
            yield from every(sub)

    import chalicelib.billing.standin  # noqa: F401  (its records live in the same table)

    classes = [m for m in set(every(models._Base)) if m is not models._Base]
    assert len({m.Meta.table_name for m in classes}) == 1
    attrs, keys, lsis, gsis = {}, set(), {}, {}
    for m in classes:
        s = m._get_schema()
        keys.add(tuple((k["AttributeName"], k["KeyType"]) for k in s["key_schema"]))
        attrs.update({a["AttributeName"]: a["AttributeType"] for a in s["attribute_definitions"]})
        for into, found in ((lsis, s["local_secondary_indexes"]), (gsis, s["global_secondary_indexes"])):
            for i in found:
                into[i["index_name"]] = (tuple((k["AttributeName"], k["KeyType"]) for k in i["key_schema"]),
                                         i["projection"]["ProjectionType"])
    assert len(keys) == 1
    return {"attributes": attrs, "keys": keys.pop(), "lsis": lsis, "gsis": gsis}


def template_schema(table: dict) -> dict:
    p = table["Properties"]

    def indexes(name):
        return {i["IndexName"]: (tuple((k["AttributeName"], k["KeyType"]) for k in i["KeySchema"]),
                                 i["Projection"]["ProjectionType"]) for i in p.get(name, [])}

    return {"attributes": {a["AttributeName"]: a["AttributeType"] for a in p["AttributeDefinitions"]},
            "keys": tuple((k["AttributeName"], k["KeyType"]) for k in p["KeySchema"]),
            "lsis": indexes("LocalSecondaryIndexes"), "gsis": indexes("GlobalSecondaryIndexes")}


def test_table_has_the_keys_and_indexes_of_the_models(pkg):
    expected = model_schema()
    assert expected["keys"] == (("pk", "HASH"), ("sk", "RANGE"))
    assert set(expected["lsis"]) == {"by_seq"} and set(expected["gsis"]) == {"by_renewal"}
    assert template_schema(table_of(pkg.template)) == expected


def test_table_billing_recovery_and_protection(pkg, stage):
    t = pkg.template
    table = table_of(t)
    p = t.value(table["Properties"])
    assert p["TableName"] == stage_env(stage)["TABLE_NAME"] == f"studio-credits-{stage}"
    assert p["BillingMode"] == "PAY_PER_REQUEST"
    assert p["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert p["DeletionProtectionEnabled"] is (stage == "prod")
    assert (table["DeletionPolicy"], table["UpdateReplacePolicy"]) == ("Retain", "Retain")
    # No TTL: every item is a balance, a ledger entry the audit sums, a membership, or a top-up
    # record a late refund or dispute needs (see infra/README.md).
    assert "TimeToLiveSpecification" not in p


def test_packaged_template_accepts_only_its_own_stage(pkg, stage):
    t = pkg.template
    assert t.parameters["Stage"]["Default"] == stage
    (assertion,) = t.doc["Rules"]["PackagedStage"]["Assertions"]
    assert assertion["Assert"] == {"Fn::Equals": [{"Ref": "Stage"}, stage]}


# --- the queue and the schedule ---------------------------------------------------------------------

def test_renewal_queue_feeds_renewal_batch_with_a_dead_letter_queue(pkg, stage):
    t = pkg.template
    queue = t.value(t.resources["RenewalQueue"]["Properties"])
    assert queue["QueueName"] == stage_env(stage)["RENEWAL_QUEUE"] == f"studio-credits-{stage}-renewals"
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": t.getatt("RenewalDeadLetterQueue", "Arn"),
                                      "maxReceiveCount": 5}
    dlq = t.value(t.resources["RenewalDeadLetterQueue"]["Properties"])
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600  # the most SQS keeps: time to look
    (event,) = t.resources["RenewalBatch"]["Properties"]["Events"].values()
    assert event["Type"] == "SQS"
    assert t.value(event["Properties"]) == {"Queue": t.getatt("RenewalQueue", "Arn"), "BatchSize": 1,
                                            "MaximumBatchingWindowInSeconds": 0}
    # Lambda refuses a queue whose visibility timeout is below the function's; AWS advises 6x.
    assert queue["VisibilityTimeout"] >= 6 * t.resources["RenewalBatch"]["Properties"]["Timeout"]


def test_daily_renewal_is_scheduled_at_00_10_utc(pkg):
    events = pkg.template.resources["DailyRenewal"]["Properties"]["Events"]
    assert [e["Properties"]["Schedule"] for e in events.values() if e["Type"] == "Schedule"] == ["cron(10 0 * * ? *)"]


# --- functions: settings and environment ------------------------------------------------------------

def test_every_function_has_its_memory_and_timeout(pkg, stage):
    t = pkg.template
    settings = CONFIG["stages"][stage]["lambda_functions"]
    assert set(t.functions()) == {LOGICAL_IDS[name] for name in settings}
    for name, s in settings.items():
        p = t.resources[LOGICAL_IDS[name]]["Properties"]
        assert (p["MemorySize"], p["Timeout"]) == (s["lambda_memory_size"], s["lambda_timeout"])
    assert t.resources["APIHandler"]["Properties"]["Timeout"] < 29  # API Gateway gives up at 29 s


def variables_config_reads() -> set[str]:
    """Every environment variable chalicelib/config.py reads: env.get("X"), env["X"], LOCAL_DEFAULTS."""
    tree = ast.parse((ROOT / "chalicelib" / "config.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str) \
                and node.args[0].value.isupper():
            names.add(node.args[0].value)
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) \
                and isinstance(node.slice.value, str) and node.slice.value.isupper():
            names.add(node.slice.value)
    return names


def ssm_secrets() -> dict[str, str]:
    from chalicelib import config

    assert config.SSM_SECRETS, "config.py names no SSM secrets"
    return dict(config.SSM_SECRETS)


def test_every_function_has_every_variable_config_reads(pkg, stage):
    t = pkg.template
    read = variables_config_reads()
    assert {"STAGE", "TABLE_NAME", "RENEWAL_QUEUE", "STRIPE_SECRET_KEY"} <= read  # the parse found them
    secrets = ssm_secrets()
    needed = read - set(NOT_DEPLOYED) - set(secrets.values()) - set(secrets)
    for function, r in t.functions().items():
        env = t.value(r["Properties"]["Environment"]["Variables"])
        wanted = needed | (set(secrets) if function in SECRET_READERS else set())
        missing = wanted - set(env)
        assert not missing, f"{function} ({stage}) lacks {sorted(missing)}: give it them, or say in NOT_DEPLOYED why not"
        assert env["STAGE"] == stage
        assert env["TABLE_NAME"] == t.ref("CreditsTable") == stage_env(stage)["TABLE_NAME"]
        assert env["RENEWAL_QUEUE"] == t.getatt("RenewalQueue", "QueueName") == stage_env(stage)["RENEWAL_QUEUE"]
        for var in ("AUTH_ISSUER", "AUTH_AUDIENCE", "AUTH_JWKS_URL", "PUBLIC_URL"):
            assert env[var] == stage_env(stage)[var]  # the CloudFormation parameters default to the stage's values


def test_no_secret_is_a_plain_environment_value(pkg, stage):
    """Secrets come from SSM Parameter Store (SecureString) under /studio-credits/<stage>/, which
    the roles may read and nothing else of SSM. Only the API handler is told where: the renewal
    functions never talk to Stripe, and their cold starts skip the SSM request."""
    t = pkg.template
    secrets = ssm_secrets()
    other = "dev" if stage == "prod" else "prod"
    for function, r in t.functions().items():
        env = t.value(r["Properties"]["Environment"]["Variables"])
        assert not set(secrets.values()) & set(env), f"{function}: a secret in plain environment"
        assert "AUTH_DEV_SECRET" not in env
        if function not in SECRET_READERS:
            assert not set(secrets) & set(env), f"{function} does not use Stripe"
            continue
        statements = t.statements_of(function)
        for var in secrets:
            name = env[var]
            assert name.startswith(f"/studio-credits/{stage}/"), name
            arn = f"arn:{PARTITION}:ssm:{REGION}:{ACCOUNT}:parameter{name}"
            assert allows(statements, "ssm:GetParameters", arn), f"{function} cannot read {name}"
        assert not allows(statements, "ssm:GetParameters",
                          f"arn:{PARTITION}:ssm:{REGION}:{ACCOUNT}:parameter/studio-credits/{other}/stripe-secret-key")
        assert granted_actions(statements, "ssm") == {"ssm:GetParameters"}


# --- roles: what the service was seen to do, on its own table and queue only -----------------------

def test_packaged_roles_carry_the_stage_policy_file(pkg, stage):
    """What `chalice deploy` uses (the file) is what the package deploys, narrowed to the stack's account."""
    policy_file = json.loads((ROOT / ".chalice" / CONFIG["stages"][stage]["iam_policy_file"]).read_text())
    expected = [{**s, "Resource": package.pin_arn(s["Resource"])} for s in policy_file["Statement"]]
    for function in pkg.template.functions():
        role = pkg.template.resources[pkg.template.role_of(function)]["Properties"]
        assert [p["PolicyDocument"]["Statement"] for p in role["Policies"]] == [expected]


def arn_of(t, permission: dict, test_table: str, test_queue: str) -> str:
    """The ARN a recorded request would touch in the stage: the test table is the stage's table."""
    service = permission["action"].split(":")[0]
    if service == "dynamodb":
        assert permission["name"] == test_table, f"a request on another table: {permission}"
        arn = t.getatt("CreditsTable", "Arn")
        return f"{arn}/index/{permission['index']}" if permission["index"] else arn
    if service == "sqs":
        assert permission["name"] == test_queue, f"a request on another queue: {permission}"
        return t.getatt("RenewalQueue", "Arn")
    if service == "ssm":  # the recorded run named its parameters /studio-credits/test/<name>
        prefix = "/studio-credits/test/"
        assert permission["name"].startswith(prefix), permission
        stage = t.parameters["Stage"]["Default"]
        return f"arn:{PARTITION}:ssm:{REGION}:{ACCOUNT}:parameter/studio-credits/{stage}/{permission['name'][len(prefix):]}"
    raise AssertionError(f"no mapping from a recorded {service} request to a resource yet: {permission}")


def test_roles_allow_every_request_the_flows_made_and_no_more_dynamodb_or_ssm(pkg, recorded_calls):
    from chalicelib import config

    t = pkg.template
    s = config.settings()  # the recorded run had the same test settings as this process
    handler = [p for p in recorded_calls if p["handler"] and not p["standin"]]
    assert {p["action"] for p in handler} >= {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                                              "dynamodb:Query", "sqs:SendMessage", "ssm:GetParameters"}, \
        "the flows recorded too little"
    for function in t.functions():
        statements = t.statements_of(function)
        check_simple(statements)
        for p in recorded_calls:
            arn = arn_of(t, p, s.table_name, s.renewal_queue)
            ok = allows(statements, p["action"], arn)
            if p["handler"] and not p["standin"]:
                assert ok, f"{function}: a handler needs {p['action']} on {arn} ({p['operation']} in {p['first_seen_in']})"
            elif p["handler"]:
                assert ok or p["action"] in STANDIN_ONLY, f"{function}: stand-in request not allowed: {p}"
            else:
                assert ok or p["action"] in NOT_FROM_LAMBDA, f"{function}: {p} is neither allowed nor explained"
            if p["action"] in NOT_FROM_LAMBDA:
                assert not ok, f"{function} may {p['action']}: {NOT_FROM_LAMBDA[p['action']]}"
        # Nothing of DynamoDB or SSM beyond what handlers were seen to do (TransactWriteItems
        # counted as the PutItem/UpdateItem/... of its items, which is what IAM checks).
        for service in ("dynamodb", "ssm"):
            seen = {p["action"] for p in handler if p["action"].startswith(f"{service}:")}
            assert granted_actions(statements, service) == seen


def test_dynamodb_and_sqs_resources_are_the_stage_table_and_queue_only(pkg, stage):
    t = pkg.template
    table = t.getatt("CreditsTable", "Arn")
    queue = t.getatt("RenewalQueue", "Arn")
    other = "dev" if stage == "prod" else "prod"
    for function in t.functions():
        statements = t.statements_of(function)
        assert resources_for(statements, "dynamodb") <= {table, f"{table}/index/*"}
        assert resources_for(statements, "sqs") == {queue}
        for action in granted_actions(statements, "dynamodb"):
            for elsewhere in (f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/studio-credits-{other}",
                              f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/other",
                              f"arn:{PARTITION}:dynamodb:{REGION}:999999999999:table/studio-credits-{stage}",
                              f"{table}/stream/2027-01-01T00:00:00.000"):
                assert not allows(statements, action, elsewhere), f"{function}: {action} on {elsewhere}"
        # Queries reach the indexes; nothing else needs them.
        for index in ("by_seq", "by_renewal"):
            assert allows(statements, "dynamodb:Query", f"{table}/index/{index}")
            assert not allows(statements, "dynamodb:GetItem", f"{table}/index/{index}")


def test_queue_handler_role_allows_the_sqs_event_source(pkg):
    t = pkg.template
    statements = t.statements_of("RenewalBatch")
    (event,) = t.resources["RenewalBatch"]["Properties"]["Events"].values()
    queue = t.value(event["Properties"]["Queue"])
    for action in SQS_EVENT_SOURCE_ACTIONS:
        assert allows(statements, action, queue)
    assert not allows(statements, "sqs:ReceiveMessage", t.getatt("RenewalDeadLetterQueue", "Arn"))


def test_logs_only_to_the_stage_functions_log_groups(pkg, stage):
    t = pkg.template
    for function in t.functions():
        statements = t.statements_of(function)
        group = f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{t.ref(function)}"
        assert allows(statements, "logs:PutLogEvents", f"{group}:log-stream:2027/01/31/[$LATEST]abc")
        assert allows(statements, "logs:CreateLogStream", f"{group}:*")
        other = "dev" if stage == "prod" else "prod"
        assert not allows(statements, "logs:PutLogEvents",
                          f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/studio-credits-{other}:log-stream:x")
    names = {t.ref(f) for f in t.functions()}
    assert names == {f"studio-credits-{stage}", f"studio-credits-{stage}-daily_renewal",
                     f"studio-credits-{stage}-renewal_batch"}  # the names `chalice deploy` gives them
    for group in t.of_type("AWS::Logs::LogGroup").values():
        assert t.value(group["Properties"]["LogGroupName"]) in {f"/aws/lambda/{n}" for n in names}


def test_api_gateways_own_errors_keep_the_contracts_error_shape(pkg):
    """Deployed, API Gateway answers some requests itself (an unknown route or method, throttling,
    a body over its limit): those answers are the contract's JSON error too."""
    responses = {r["Properties"]["ResponseType"]: r["Properties"]
                 for r in pkg.template.of_type("AWS::ApiGateway::GatewayResponse").values()}
    assert set(responses) == {"MISSING_AUTHENTICATION_TOKEN", "REQUEST_TOO_LARGE", "THROTTLED", "DEFAULT_4XX", "DEFAULT_5XX"}
    assert all(r["RestApiId"] == {"Ref": "RestAPI"} for r in responses.values())
    assert responses["MISSING_AUTHENTICATION_TOKEN"]["StatusCode"] == "404"
    codes = {}
    for kind, r in responses.items():
        # API Gateway fills $context.error.messageString in as a quoted JSON string.
        body = r["ResponseTemplates"]["application/json"].replace("$context.error.messageString", '"Too many requests"')
        codes[kind] = json.loads(body)["error"]["code"]
    assert codes == {"MISSING_AUTHENTICATION_TOKEN": "not_found", "REQUEST_TOO_LARGE": "payload_too_large",
                     "THROTTLED": "rate_limited", "DEFAULT_4XX": "invalid_request", "DEFAULT_5XX": "unavailable"}
