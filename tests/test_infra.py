"""The CDK stack (infra/): synthesized offline, linted, and checked for what it promises.

No AWS account and no Docker engine are needed: synth only stages the image's build context
(a copy of a few files) and `chalice package` builds the API's zip with pip. The node parts
(`cdk synth` through the CLI, `asl-validator`) use infra/node_modules; the fixture runs
`npm ci --prefix infra` when it is missing, and those tests skip only when node is missing.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

REPO = Path(__file__).resolve().parents[1]
INFRA = REPO / "infra"

aws_cdk = pytest.importorskip("aws_cdk")
pytest.importorskip("chalice.cdk")
import cfnlint.api  # noqa: E402
from aws_cdk.assertions import Match, Template  # noqa: E402


def _load_stack_module() -> Any:
    """infra/stack.py under its own name: putting infra/ on sys.path would shadow the API's
    ``app`` module (infra/app.py) for every test that imports it later."""
    spec = importlib.util.spec_from_file_location("minion_training_infra_stack", INFRA / "stack.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_stack = _load_stack_module()
ARTIFACTS_PREFIX = _stack.ARTIFACTS_PREFIX
ASL_PATH = _stack.ASL_PATH
IMAGE_FUNCTIONS = _stack.IMAGE_FUNCTIONS
STAR_RESOURCE_ACTIONS = _stack.STAR_RESOURCE_ACTIONS
UPLOADS_PREFIX = _stack.UPLOADS_PREFIX
MinionTrainingStack = _stack.MinionTrainingStack
asl_substitutions = _stack.asl_substitutions

STACK = "MinionTraining"
CDK_JSON_CONTEXT = json.loads((INFRA / "cdk.json").read_text())["context"]
LINT_REGIONS = ["us-east-1", "eu-west-1"]
# CDK adds DependsOn on a function's role although Role's GetAtt already orders them.
ALLOWED_LINT_WARNINGS = {"W3005"}
SPEC = {spec.handler: spec for spec in IMAGE_FUNCTIONS}
TASK_HANDLERS = {spec.handler for spec in IMAGE_FUNCTIONS if spec.substitution}


@dataclass
class Synth:
    template: Template
    data: dict[str, Any]
    outdir: Path

    def of_type(self, type_: str) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in self.data["Resources"].items() if r["Type"] == type_}

    def one(self, type_: str) -> tuple[str, dict[str, Any]]:
        found = self.of_type(type_)
        assert len(found) == 1, f"{type_}: {sorted(found)}"
        return next(iter(found.items()))

    def function_ids(self) -> dict[str, str]:
        """handler name -> logical id of its image function."""
        ids = {}
        for logical, res in self.of_type("AWS::Lambda::Function").items():
            command = res["Properties"].get("ImageConfig", {}).get("Command")
            if command:
                ids[command[0].removeprefix("chalicelib.step_lambdas.")] = logical
        return ids

    def role_of(self, function_logical: str) -> str:
        return self.data["Resources"][function_logical]["Properties"]["Role"]["Fn::GetAtt"][0]

    def statements(self, role_logical: str) -> list[dict[str, Any]]:
        found = []
        for res in self.of_type("AWS::IAM::Policy").values():
            if {"Ref": role_logical} in res["Properties"].get("Roles", []):
                found.extend(res["Properties"]["PolicyDocument"]["Statement"])
        role = self.data["Resources"][role_logical]["Properties"]
        for policy in role.get("Policies", []):
            found.extend(policy["PolicyDocument"]["Statement"])
        return found


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else action


def _resources(statement: dict[str, Any]) -> list[Any]:
    resource = statement["Resource"]
    return resource if isinstance(resource, list) else [resource]


def actions_on(statements: list[dict[str, Any]], logical_id: str, suffix: str = "") -> set[str]:
    """Actions allowed on resources that mention ``logical_id`` (and end with ``suffix``)."""
    found: set[str] = set()
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        for resource in _resources(statement):
            text = json.dumps(resource)
            if f'"{logical_id}"' in text and (not suffix or text.rstrip('"]}').endswith(suffix)):
                found.update(_actions(statement))
    return found


def all_actions(statements: list[dict[str, Any]]) -> set[str]:
    return {a for s in statements for a in _actions(s)}


def _synth(root: Path, **context: str) -> Synth:
    """One in-process synth; chalice package writes chalice.out/ in the working directory."""
    root.mkdir(parents=True, exist_ok=True)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        app = aws_cdk.App(outdir=str(root / "cdk.out"), context={**CDK_JSON_CONTEXT, **context})
        stack = MinionTrainingStack(app, STACK)
        app.synth()
        template = Template.from_stack(stack)
    finally:
        os.chdir(cwd)
    return Synth(template, template.to_json(), root / "cdk.out")


@pytest.fixture(scope="module")
def default(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return _synth(tmp_path_factory.mktemp("synth") / "default")


@pytest.fixture(scope="module")
def cognito_domain(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The other switch positions at once: Cognito auth, managed OpenSearch domain."""
    return _synth(
        tmp_path_factory.mktemp("synth") / "variant",
        auth="cognito",
        opensearch="domain",
        upload_expiry_days="3",
    )


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """infra/node_modules/.bin, installed from the lock file when missing."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm not installed")
    bin_dir = INFRA / "node_modules" / ".bin"
    if not (bin_dir / "cdk").exists() or not (bin_dir / "asl-validator").exists():
        subprocess.run(
            ["npm", "ci", "--prefix", str(INFRA), "--no-audit", "--no-fund"],
            check=True,
            timeout=300,
        )
    return bin_dir


# ------------------------------------------------------------------- definitions


def test_asl_substitutions_are_mapped_to_existing_handlers() -> None:
    assert asl_substitutions() == {s.substitution for s in IMAGE_FUNCTIONS if s.substitution}
    assert len(TASK_HANDLERS) == 11
    assert {"on_execution_end", "query"} <= set(SPEC)
    # Every handler the image's CMD names is a top-level name of chalicelib.step_lambdas
    # (parsed, not imported: the module pulls in the step run time).
    tree = ast.parse((REPO / "chalicelib" / "step_lambdas.py").read_text())
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    defined |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
                if isinstance(t, ast.Name)}  # fmt: skip
    assert set(SPEC) <= defined, sorted(set(SPEC) - defined)


def test_asl_validator_accepts_the_definition(node_modules: Path) -> None:
    result = subprocess.run(
        [str(node_modules / "asl-validator"), "--json-path", str(ASL_PATH)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_asl_validator_rejects_a_broken_definition(node_modules: Path, tmp_path: Path) -> None:
    broken = json.loads(ASL_PATH.read_text())
    broken["States"]["Testing"]["Next"] = "No Such State"
    path = tmp_path / "broken.asl.json"
    path.write_text(json.dumps(broken))
    result = subprocess.run(
        [str(node_modules / "asl-validator"), "--json-path", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0


def test_bad_context_is_rejected(tmp_path: Path) -> None:
    app = aws_cdk.App(outdir=str(tmp_path / "cdk.out"), context={"auth": "apikey"})
    with pytest.raises(Exception, match="auth"):
        MinionTrainingStack(app, STACK)


# ------------------------------------------------------------------------- lint


@pytest.mark.parametrize("variant", ["default", "cognito_domain"])
def test_cfn_lint_passes(variant: str, request: pytest.FixtureRequest) -> None:
    synth: Synth = request.getfixturevalue(variant)
    text = (synth.outdir / f"{STACK}.template.json").read_text()
    matches = cfnlint.api.lint(text, regions=LINT_REGIONS)
    problems = [
        f"{m.rule.id} {m.message} (line {m.linenumber})"
        for m in matches
        if m.rule.id not in ALLOWED_LINT_WARNINGS
    ]
    assert not problems, "\n".join(problems)
    assert not [m for m in matches if m.rule.id.startswith("E")]


# ----------------------------------------------------------------------- data


def test_tables_on_demand_pitr_encrypted(default: Synth) -> None:
    tables = default.of_type("AWS::DynamoDB::Table")
    assert len(tables) == 3
    keys = {}
    for res in tables.values():
        props = res["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
        assert props["SSESpecification"]["SSEEnabled"] is True
        assert res["DeletionPolicy"] == "Retain"
        schema = {k["AttributeName"]: k["KeyType"] for k in props["KeySchema"]}
        types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
        hash_key = next(name for name, kind in schema.items() if kind == "HASH")
        keys[(hash_key, types[hash_key])] = props
    assert set(keys) == {("id", "N"), ("id", "S"), ("name", "S")}
    (gsi,) = keys[("id", "N")]["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == "minion-index"
    assert gsi["KeySchema"] == [
        {"AttributeName": "minion_id", "KeyType": "HASH"},
        {"AttributeName": "created_at", "KeyType": "RANGE"},
    ]


def test_dataset_bucket_private_tls_only_expiring_uploads(
    default: Synth, cognito_domain: Synth
) -> None:
    default.template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                ]
            },
            "LifecycleConfiguration": {
                "Rules": Match.array_with(
                    [Match.object_like({"Prefix": "uploads/", "ExpirationInDays": 7,
                                        "Status": "Enabled"})]
                )
            },
        },
    )  # fmt: skip
    cognito_domain.template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "LifecycleConfiguration": {
                "Rules": Match.array_with(
                    [Match.object_like({"Prefix": "uploads/", "ExpirationInDays": 3})]
                )
            }
        },
    )
    _, policy = default.one("AWS::S3::BucketPolicy")
    denies = [
        s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"
    ]
    assert {"Bool": {"aws:SecureTransport": "false"}} in [s["Condition"] for s in denies]
    assert any("s3:TlsVersion" in json.dumps(s["Condition"]) for s in denies)


# --------------------------------------------------------------- state machine


def test_state_machine_logging_tracing_and_definition(default: Synth) -> None:
    _, machine = default.one("AWS::StepFunctions::StateMachine")
    props = machine["Properties"]
    assert props["TracingConfiguration"] == {"Enabled": True}
    logging = props["LoggingConfiguration"]
    assert logging["Level"] == "ALL" and logging["IncludeExecutionData"] is True
    log_group = logging["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"]
    assert default.data["Resources"][log_group["Fn::GetAtt"][0]]["Type"] == "AWS::Logs::LogGroup"
    # The very file, unchanged: the template holds its text as DefinitionString.
    assert json.loads(props["DefinitionString"]) == json.loads(ASL_PATH.read_text())


def test_every_task_resolves_to_its_image_function(default: Synth) -> None:
    _, machine = default.one("AWS::StepFunctions::StateMachine")
    props = machine["Properties"]
    substitutions = props["DefinitionSubstitutions"]
    functions = default.function_ids()
    by_substitution = {s.substitution: s.handler for s in IMAGE_FUNCTIONS if s.substitution}
    tasks = {
        name: state
        for name, state in json.loads(props["DefinitionString"])["States"].items()
        if state["Type"] == "Task"
    }
    assert len(tasks) == 11
    invoked = set()
    for name, state in tasks.items():
        match = re.fullmatch(r"\$\{(\w+)\}", state["Parameters"]["FunctionName"])
        assert match, f"{name}: FunctionName is not a substitution"
        target = substitutions[match.group(1)]
        logical = target["Fn::GetAtt"][0]
        assert target["Fn::GetAtt"][1] == "Arn"
        resource = default.data["Resources"][logical]
        assert resource["Type"] == "AWS::Lambda::Function", name
        assert logical == functions[by_substitution[match.group(1)]], name
        invoked.add(logical)
    # The state machine may invoke exactly those functions (and their versions/aliases).
    machine_role = props["RoleArn"]["Fn::GetAtt"][0]
    statements = default.statements(machine_role)
    allowed = {
        logical
        for s in statements
        if "lambda:InvokeFunction" in _actions(s)
        for r in _resources(s)
        for logical in re.findall(r'"(\w+)", "Arn"', json.dumps(r))
    }
    assert allowed == invoked


def test_execution_end_rule_targets_on_execution_end(default: Synth) -> None:
    _, rule = default.one("AWS::Events::Rule")
    machine, _ = default.one("AWS::StepFunctions::StateMachine")
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.states"]
    assert pattern["detail-type"] == ["Step Functions Execution Status Change"]
    assert sorted(pattern["detail"]["status"]) == ["ABORTED", "FAILED", "TIMED_OUT"]
    assert pattern["detail"]["stateMachineArn"] == [{"Ref": machine}]
    (target,) = rule["Properties"]["Targets"]
    on_end = default.function_ids()["on_execution_end"]
    assert target["Arn"] == {"Fn::GetAtt": [on_end, "Arn"]}
    dead_letters, _ = default.one("AWS::SQS::Queue")
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [dead_letters, "Arn"]}}
    default.template.has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "Action": "lambda:InvokeFunction",
            "Principal": "events.amazonaws.com",
            "FunctionName": {"Fn::GetAtt": [on_end, "Arn"]},
        },
    )


# ------------------------------------------------------------------- functions


def test_image_functions_have_room_in_tmp_for_a_dataset(default: Synth) -> None:
    for logical in default.function_ids().values():
        props = default.template.to_json()["Resources"][logical]["Properties"]
        assert props["EphemeralStorage"] == {"Size": 2048}, logical


def test_image_functions_share_one_image_and_stage_without_docker(default: Synth) -> None:
    functions = default.function_ids()
    assert set(functions) == set(SPEC)
    image_uris = set()
    for handler, logical in functions.items():
        props = default.data["Resources"][logical]["Properties"]
        assert props["PackageType"] == "Image"
        assert props["ImageConfig"]["Command"] == [f"chalicelib.step_lambdas.{handler}"]
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["MemorySize"] == SPEC[handler].memory_mb
        assert props["Timeout"] == SPEC[handler].timeout_s <= 900
        env = props["Environment"]["Variables"]
        assert env["HF_HUB_OFFLINE"] == "1"
        assert env["KB_BACKEND"] == "opensearch"
        assert env["OPENSEARCH_SERVICE"] == "aoss"
        for name in ("JOBS_TABLE", "MINIONS_TABLE", "COUNTERS_TABLE", "DATASET_BUCKET",
                     "OPENSEARCH_URL"):  # fmt: skip
            assert name in env, (handler, name)
        image_uris.add(json.dumps(props["Code"]["ImageUri"]))
    assert len(image_uris) == 1
    # One image asset; synth only staged its (small) build context, nothing was built.
    assets = json.loads((default.outdir / f"{STACK}.assets.json").read_text())
    (image,) = assets["dockerImages"].values()
    assert image["source"]["dockerFile"] == "infra/Dockerfile"
    assert image["source"]["platform"] == "linux/amd64"
    context = default.outdir / image["source"]["directory"]
    top = {p.name for p in context.iterdir()}
    assert top == {"chalicelib", "infra", "requirements.txt", "requirements-steps.txt"}
    assert [p.name for p in (context / "infra").iterdir()] == ["Dockerfile"]
    assert (context / "chalicelib" / "step_lambdas.py").is_file()
    assert not list(context.rglob("__pycache__"))


def test_iam_has_no_wildcards_where_a_narrower_grant_exists(
    default: Synth, cognito_domain: Synth
) -> None:
    for synth in (default, cognito_domain):
        statements = []
        for type_ in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for res in synth.of_type(type_).values():
                statements.extend(res["Properties"]["PolicyDocument"]["Statement"])
        for role in synth.of_type("AWS::IAM::Role").values():
            assert "ManagedPolicyArns" not in role["Properties"], role
            for policy in role["Properties"].get("Policies", []):
                statements.extend(policy["PolicyDocument"]["Statement"])
        assert statements
        for statement in statements:
            actions = _actions(statement)
            assert not [a for a in actions if a == "*" or a.endswith(":*")], statement
            if "*" in _resources(statement):
                assert set(actions) <= STAR_RESOURCE_ACTIONS, statement


def test_each_image_function_gets_only_what_it_uses(default: Synth) -> None:
    functions = default.function_ids()
    tables = {
        "jobs": _table(default, "id", "N"),
        "minions": _table(default, "id", "S"),
        "counters": _table(default, "name", "S"),
    }
    bucket, _ = default.one("AWS::S3::Bucket")
    collection, _ = default.one("AWS::OpenSearchServerless::Collection")
    for handler, spec in SPEC.items():
        statements = default.statements(default.role_of(functions[handler]))
        for name, logical in tables.items():
            level = getattr(spec, name, "")
            granted = actions_on(statements, logical)
            assert ("dynamodb:GetItem" in granted) == (level in ("r", "rw")), (handler, name)
            assert ("dynamodb:PutItem" in granted) == (level == "rw"), (handler, name)
        reads = actions_on(statements, bucket)
        assert ("s3:GetObject*" in reads) == (spec.bucket in ("r", "rw")), handler
        writes = {a for a in reads if a.startswith("s3:PutObject") or a.startswith("s3:Delete")}
        if spec.bucket == "rw":
            assert "s3:PutObject" in actions_on(statements, bucket, ARTIFACTS_PREFIX)
            assert writes == actions_on(statements, bucket, ARTIFACTS_PREFIX) & writes
        else:
            assert not writes, handler
        aoss = actions_on(statements, collection)
        assert (aoss == {"aoss:APIAccessAll"}) == bool(spec.kb), handler
        assert not [a for a in all_actions(statements) if a.startswith(("states:", "lambda:"))]


def test_api_role_least_privilege(default: Synth) -> None:
    role = default.data["Resources"]["APIHandler"]["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = default.statements(role)
    machine, _ = default.one("AWS::StepFunctions::StateMachine")
    query = default.function_ids()["query"]
    bucket, _ = default.one("AWS::S3::Bucket")
    assert actions_on(statements, machine) >= {"states:StartExecution"}
    states = {a for a in all_actions(statements) if a.startswith("states:")}
    execution_actions = states - {"states:StartExecution"}
    assert execution_actions == {"states:DescribeExecution", "states:StopExecution"}
    invoke = [s for s in statements if "lambda:InvokeFunction" in _actions(s)]
    assert invoke and all(query in json.dumps(s["Resource"]) for s in invoke)
    assert actions_on(statements, bucket) == actions_on(statements, bucket, UPLOADS_PREFIX)
    assert "s3:PutObject" in actions_on(statements, bucket, UPLOADS_PREFIX)
    assert not [a for a in all_actions(statements) if a.startswith(("aoss:", "es:"))]
    for key, name in (("id", "N"), ("id", "S"), ("name", "S")):
        assert "dynamodb:UpdateItem" in actions_on(statements, _table(default, key, name))


def _table(synth: Synth, key: str, type_: str) -> str:
    for logical, res in synth.of_type("AWS::DynamoDB::Table").items():
        props = res["Properties"]
        types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
        hash_key = next(k["AttributeName"] for k in props["KeySchema"] if k["KeyType"] == "HASH")
        if (hash_key, types[hash_key]) == (key, type_):
            return logical
    raise AssertionError(f"no table keyed {key} ({type_})")


# ------------------------------------------------------------------ knowledge base


def test_serverless_collection_and_its_three_policies(default: Synth) -> None:
    collection, res = default.one("AWS::OpenSearchServerless::Collection")
    name = res["Properties"]["Name"]
    assert res["Properties"]["Type"] == "VECTORSEARCH"
    policies = default.of_type("AWS::OpenSearchServerless::SecurityPolicy")
    by_type = {p["Properties"]["Type"]: (k, p["Properties"]) for k, p in policies.items()}
    assert set(by_type) == {"encryption", "network"}
    assert set(res.get("DependsOn", [])) >= {by_type["encryption"][0], by_type["network"][0]}
    encryption = json.loads(by_type["encryption"][1]["Policy"])
    assert encryption["AWSOwnedKey"] is True
    assert encryption["Rules"] == [{"ResourceType": "collection",
                                    "Resource": [f"collection/{name}"]}]  # fmt: skip
    network = json.loads(by_type["network"][1]["Policy"])
    assert [r["ResourceType"] for r in network[0]["Rules"]] == ["collection"]
    _, access = default.one("AWS::OpenSearchServerless::AccessPolicy")
    assert access["Properties"]["Type"] == "data"
    document = json.dumps(access["Properties"]["Policy"])
    functions = default.function_ids()
    for handler, spec in SPEC.items():
        role = default.role_of(functions[handler])
        assert (f'\\"{role}\\"' in document or f'"{role}"' in document) == bool(spec.kb), handler
    assert "ApiHandlerRole" not in document
    env = default.data["Resources"][functions["query"]]["Properties"]["Environment"]
    assert env["Variables"]["OPENSEARCH_URL"] == {"Fn::GetAtt": [collection, "CollectionEndpoint"]}


def test_domain_variant_replaces_the_collection(cognito_domain: Synth) -> None:
    synth = cognito_domain
    assert not [r for r in synth.data["Resources"].values()
                if r["Type"].startswith("AWS::OpenSearchServerless::")]  # fmt: skip
    domain, res = synth.one("AWS::OpenSearchService::Domain")
    props = res["Properties"]
    assert props["EncryptionAtRestOptions"]["Enabled"] is True
    assert props["NodeToNodeEncryptionOptions"]["Enabled"] is True
    assert props["DomainEndpointOptions"]["EnforceHTTPS"] is True
    assert props["EngineVersion"].startswith("OpenSearch_")
    functions = synth.function_ids()
    for handler, spec in SPEC.items():
        logical = functions[handler]
        env = synth.data["Resources"][logical]["Properties"]["Environment"]["Variables"]
        assert env["OPENSEARCH_SERVICE"] == "es"
        assert domain in json.dumps(env["OPENSEARCH_URL"])
        es = actions_on(synth.statements(synth.role_of(logical)), domain)
        assert ("es:ESHttpGet" in es) == bool(spec.kb), handler
        assert ("es:ESHttpPut" in es) == (spec.kb == "rw"), handler


# ----------------------------------------------------------------------- the API


def test_api_is_the_chalice_app_with_its_settings(default: Synth) -> None:
    props = default.data["Resources"]["APIHandler"]["Properties"]
    assert default.data["Resources"]["APIHandler"]["Type"] == "AWS::Serverless::Function"
    assert props["Runtime"] == "python3.11"
    assert props["Tracing"] == "Active"
    env = props["Environment"]["Variables"]
    for name in ("JOBS_TABLE", "MINIONS_TABLE", "COUNTERS_TABLE", "DATASET_BUCKET",
                 "STATE_MACHINE_ARN", "QUERY_FUNCTION", "KB_BACKEND", "OPENSEARCH_URL",
                 "OPENSEARCH_SERVICE"):  # fmt: skip
        assert name in env, name
    assert env["AUTH_MODE"] == "iam"
    assert env["QUERY_FUNCTION"] == {"Ref": default.function_ids()["query"]}
    # The zip holds the API code and requirements.txt's packages, no torch.
    code = default.outdir / f"asset.{props['CodeUri']['Key']}"
    names = zipfile.ZipFile(code).namelist()
    assert "app.py" in names and "chalicelib/config.py" in names
    assert any(n.startswith("pynamodb/") for n in names)
    assert not any(n.startswith("torch/") for n in names)
    assert code.stat().st_size < 50 * 1024 * 1024


PUBLIC_ROUTES = {("/api/v2/health", "get")}  # the load balancer/uptime probe


def _security(synth: Synth) -> tuple[dict[str, Any], dict[tuple[str, str], Any]]:
    """securityDefinitions, and each non-preflight operation's ``security`` by (path, verb)."""
    body = synth.data["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    security = {
        (path, verb): op.get("security")
        for path, ops in body["paths"].items()
        for verb, op in ops.items()
        if verb != "options"  # CORS preflight: a mock integration, no auth by design
    }
    return body.get("securityDefinitions", {}), security


def _assert_every_private_route_uses(security: dict[tuple[str, str], Any], name: str) -> None:
    assert len(security) > len(PUBLIC_ROUTES)
    for route, used in security.items():
        assert used == (None if route in PUBLIC_ROUTES else [{name: []}]), route


def test_iam_auth_signs_every_route(default: Synth) -> None:
    definitions, security = _security(default)
    (name,) = [k for k, v in definitions.items()
               if v.get("x-amazon-apigateway-authtype") == "awsSigv4"]  # fmt: skip
    _assert_every_private_route_uses(security, name)
    _, policy = default.one("AWS::IAM::ManagedPolicy")
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "execute-api:Invoke"
    assert "RestAPI" in json.dumps(statement["Resource"])


def test_cognito_auth_uses_the_stack_user_pool(cognito_domain: Synth) -> None:
    synth = cognito_domain
    pool, _ = synth.one("AWS::Cognito::UserPool")
    synth.one("AWS::Cognito::UserPoolClient")
    definitions, security = _security(synth)
    (name,) = [k for k, v in definitions.items()
               if v.get("x-amazon-apigateway-authtype") == "cognito_user_pools"]  # fmt: skip
    authorizer = definitions[name]["x-amazon-apigateway-authorizer"]
    assert authorizer["providerARNs"] == [{"Fn::GetAtt": [pool, "Arn"]}]
    _assert_every_private_route_uses(security, name)
    env = synth.data["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"]
    assert env["AUTH_MODE"] == "cognito"
    assert env["COGNITO_USER_POOL_ARN"] == {"Fn::GetAtt": [pool, "Arn"]}
    assert not synth.of_type("AWS::IAM::ManagedPolicy")


def test_outputs(default: Synth, cognito_domain: Synth) -> None:
    expected = {
        *("ApiUrl", "StateMachineArn", "QueryFunctionName", "OpenSearchUrl"),
        *("JobsTableName", "MinionsTableName", "CountersTableName", "DatasetBucketName"),
    }
    assert expected | {"ApiInvokePolicyArn"} <= set(default.data["Outputs"])
    assert expected | {"UserPoolId", "UserPoolClientId"} <= set(cognito_domain.data["Outputs"])
    url = default.data["Outputs"]["ApiUrl"]["Value"]["Fn::Sub"]
    assert url[0].startswith("https://${Api}.execute-api.")
    assert url[1] == {"Api": {"Ref": "RestAPI"}}


def test_synth_leaves_the_process_environment_alone(default: Synth) -> None:
    """chalice package copies the stage's variables into os.environ; the stack undoes it."""
    assert not any("${Token[" in v for v in os.environ.values())


# ------------------------------------------------------------------------ the CLI


def test_cdk_cli_synth(node_modules: Path, tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        # No account lookups, no IMDS probes, no notices, telemetry or version checks.
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "CDK_DISABLE_CLI_TELEMETRY": "1",
        "CDK_DISABLE_VERSION_CHECK": "1",
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
    }
    out = tmp_path / "cdk.out"
    result = subprocess.run(
        [str(node_modules / "cdk"), "synth", "--quiet", "--no-notices",
         "--no-version-reporting", "--app", f"{sys.executable} app.py", "-o", str(out),
         "-c", "auth=iam"],
        cwd=INFRA,
        env=env,
        capture_output=True,
        text=True,
        timeout=480,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    template = json.loads((out / f"{STACK}.template.json").read_text())
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    types = {r["Type"] for r in template["Resources"].values()}
    assert {"AWS::StepFunctions::StateMachine", "AWS::Serverless::Api",
            "AWS::OpenSearchServerless::Collection"} <= types  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text())
    assert f"{STACK}" in manifest["artifacts"]
