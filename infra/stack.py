"""The minion-training stack: tables, dataset bucket, knowledge-base store, step Lambdas
(one container image), the training state machine, its failure rule, and the Chalice API.

Context values (``cdk synth -c key=value``; defaults in ``DEFAULTS``):

- ``auth``: ``iam`` (API routes need SigV4, callers need ``execute-api:Invoke``) or
  ``cognito`` (a user pool; callers send its ID token).
- ``opensearch``: ``serverless`` (an OpenSearch Serverless VECTORSEARCH collection) or
  ``domain`` (a one-node managed OpenSearch domain: far cheaper at rest).
- ``upload_expiry_days``: raw uploads under ``uploads/`` expire after this many days.
- ``aoss_standby_replicas``: ``DISABLED`` (1 OCU floor, dev/test) or ``ENABLED`` (2 OCUs).
- ``domain_instance_type``: instance type of the managed domain.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_opensearchserverless as aoss
from aws_cdk import aws_opensearchservice as opensearch
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from chalice.cdk import Chalice
from constructs import Construct

from chalicelib.statemachine import DEFINITION_PATH, TASK_HANDLERS, substitution_key

REPO_ROOT = Path(__file__).resolve().parent.parent
ASL_PATH = DEFINITION_PATH
DOCKERFILE = "infra/Dockerfile"  # relative to the build context, the repository root

# The image's build context is the repository root; this list is its .dockerignore (Docker
# syntax), so the asset hash and the context hold only what the Dockerfile copies.
IMAGE_CONTEXT_EXCLUDE = [
    "*",
    "!requirements.txt",
    "!requirements-steps.txt",
    "!chalicelib",
    "!infra",
    "infra/*",
    "!infra/Dockerfile",
    "**/__pycache__",
    "**/*.pyc",
]

DEFAULTS: dict[str, str] = {
    "auth": "iam",
    "opensearch": "serverless",
    "upload_expiry_days": "7",
    "aoss_standby_replicas": "DISABLED",
    "domain_instance_type": "t3.small.search",
    "collection_name": "minion-kb",
}
AUTH_MODES = ("iam", "cognito")
OPENSEARCH_MODES = ("serverless", "domain")

# Actions that IAM only grants on "*" (no resource-level permissions). Tests allow "*" only here.
STAR_RESOURCE_ACTIONS = frozenset(
    {
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
    }
)


@dataclass(frozen=True)
class ImageFunction:
    """One Lambda of the step image: its handler and exactly what it may touch.

    Access levels are "" (none), "r" (read) or "rw" (read and write); ``kb`` is the vector store.
    For the bucket, "r" reads every key and "rw" also writes under ``ARTIFACTS_PREFIX``.
    """

    handler: str  # chalicelib.step_lambdas.<handler>
    memory_mb: int
    timeout_s: int
    jobs: str = "rw"
    minions: str = ""
    bucket: str = ""
    kb: str = ""

    @property
    def substitution(self) -> str | None:
        """The definition's ``${...}`` variable for this function, None if it is no Task."""
        return substitution_key(self.handler) if self.handler in TASK_HANDLERS else None

    @property
    def construct_id(self) -> str:
        return "".join(part.title() for part in self.handler.split("_")) + "Function"


ARTIFACTS_PREFIX = "artifacts/*"  # refined datasets: chalicelib.training.load_dataset
UPLOADS_PREFIX = "uploads/*"  # raw uploads: chalicelib.uploads (presigned PUT by the API)

EPHEMERAL_MB = 2048
HEAVY_MB = 3008  # ~1.7 vCPU; the default per-function ceiling of a new account
LIGHT_MB = 1024

# The one place that maps ASL variables to handlers and sets each function's permissions.
IMAGE_FUNCTIONS: tuple[ImageFunction, ...] = (
    ImageFunction("capture_before_metrics", HEAVY_MB, 900,
                  minions="r", bucket="r", kb="r"),
    ImageFunction("load_dataset", 2048, 900,
                  minions="r", bucket="rw"),
    ImageFunction("create_knowledge_base", LIGHT_MB, 300,
                  minions="r", kb="rw"),
    ImageFunction("create_embeddings", HEAVY_MB, 900,
                  minions="r", bucket="r", kb="rw"),
    ImageFunction("update_minion", LIGHT_MB, 300,
                  minions="rw", kb="rw"),
    ImageFunction("validate_training", HEAVY_MB, 900,
                  minions="r", bucket="r", kb="r"),
    ImageFunction("run_tests", HEAVY_MB, 900,
                  minions="r", bucket="r", kb="r"),
    ImageFunction("capture_after_metrics", HEAVY_MB, 900,
                  minions="r", bucket="r", kb="r"),
    ImageFunction("calculate_improvements", LIGHT_MB, 300,
                  minions="rw"),
    ImageFunction("mark_succeeded", LIGHT_MB, 300,
                  minions="rw", kb="rw"),
    ImageFunction("mark_failed", LIGHT_MB, 300,
                  minions="rw", kb="rw"),
    ImageFunction("on_execution_end", LIGHT_MB, 300,
                  minions="rw", kb="rw"),
    ImageFunction("query", HEAVY_MB, 60, jobs="", minions="r", kb="r"),
)  # fmt: skip


def asl_substitutions(path: Path = ASL_PATH) -> set[str]:
    """The ``${Var}`` names the state machine definition expects."""
    return set(re.findall(r"\$\{(\w+)\}", path.read_text()))


def _context(scope: Construct, key: str) -> str:
    value = scope.node.try_get_context(key)
    return DEFAULTS[key] if value is None else str(value)


@contextmanager
def _isolated_app_import(source_dir: Path, env: Mapping[str, str]) -> Iterator[None]:
    """Let ``chalice package`` import the repository's ``app.py`` cleanly, then undo it.

    Chalice imports the module named ``app`` (and copies the stage's environment variables
    into ``os.environ`` first). In a process that already imported a different ``app`` (this
    CDK entry point is also ``app.py``; tests may have imported the API), the cached module
    would be reused, and the leaked variables would hold CDK token strings. So: import fresh,
    with ``env`` set, and restore ``os.environ``, ``sys.path`` and ``sys.modules`` afterwards.
    """
    saved_environ = dict(os.environ)
    saved_path = list(sys.path)
    saved_app = sys.modules.pop("app", None)
    sys.path.insert(0, str(source_dir))  # chalice only adds it when absent, maybe behind infra/
    os.environ.update(env)
    # chalice package resolves the API Gateway service principal through a boto3 client,
    # which needs some region; the principal is the same in every commercial region.
    os.environ.setdefault("AWS_DEFAULT_REGION", os.environ.get("CDK_DEFAULT_REGION", "us-east-1"))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_environ)
        sys.path[:] = saved_path
        sys.modules.pop("app", None)
        if saved_app is not None:
            sys.modules["app"] = saved_app


class MinionTrainingStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)

        auth_mode = _context(self, "auth")
        if auth_mode not in AUTH_MODES:
            raise ValueError(f"context auth={auth_mode!r}: expected one of {AUTH_MODES}")
        search_mode = _context(self, "opensearch")
        if search_mode not in OPENSEARCH_MODES:
            raise ValueError(f"context opensearch={search_mode!r}: expected {OPENSEARCH_MODES}")

        wanted = asl_substitutions()
        mapped = {f.substitution for f in IMAGE_FUNCTIONS if f.substitution}
        if wanted != mapped:
            raise ValueError(
                f"{ASL_PATH.name} substitutions and IMAGE_FUNCTIONS differ: "
                f"unmapped {sorted(wanted - mapped)}, unused {sorted(mapped - wanted)}"
            )

        # ---------------------------------------------------------------- data
        table_defaults = {
            "billing_mode": dynamodb.BillingMode.PAY_PER_REQUEST,
            "point_in_time_recovery_specification": dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            "encryption": dynamodb.TableEncryption.AWS_MANAGED,
            "removal_policy": cdk.RemovalPolicy.RETAIN,
        }
        self.jobs_table = dynamodb.Table(
            self,
            "JobsTable",
            partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.NUMBER),
            **table_defaults,
        )
        self.jobs_table.add_global_secondary_index(
            index_name="minion-index",
            partition_key=dynamodb.Attribute(name="minion_id", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="created_at", type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.ALL,
        )
        self.minions_table = dynamodb.Table(
            self,
            "MinionsTable",
            partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
            **table_defaults,
        )
        self.counters_table = dynamodb.Table(
            self,
            "CountersTable",
            partition_key=dynamodb.Attribute(name="name", type=dynamodb.AttributeType.STRING),
            **table_defaults,
        )

        self.dataset_bucket = s3.Bucket(
            self,
            "DatasetBucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            encryption=s3.BucketEncryption.S3_MANAGED,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=False,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-uploads",
                    prefix="uploads/",
                    expiration=cdk.Duration.days(int(_context(self, "upload_expiry_days"))),
                ),
                s3.LifecycleRule(
                    id="abort-incomplete-multipart",
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(1),
                ),
            ],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )

        # ------------------------------------------------------- step functions (image)
        roles = {
            spec.handler: iam.Role(
                self,
                f"{spec.construct_id}Role",
                assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                description=f"chalicelib.step_lambdas.{spec.handler}",
            )
            for spec in IMAGE_FUNCTIONS
        }
        kb_readers = [roles[s.handler] for s in IMAGE_FUNCTIONS if s.kb == "r"]
        kb_writers = [roles[s.handler] for s in IMAGE_FUNCTIONS if s.kb == "rw"]

        if search_mode == "serverless":
            kb_env = self._serverless_collection(kb_readers, kb_writers)
        else:
            kb_env = self._managed_domain(kb_readers, kb_writers)

        common_env = {
            "JOBS_TABLE": self.jobs_table.table_name,
            "MINIONS_TABLE": self.minions_table.table_name,
            "COUNTERS_TABLE": self.counters_table.table_name,
            "DATASET_BUCKET": self.dataset_bucket.bucket_name,
            "KB_BACKEND": "opensearch",
            **kb_env,
        }

        self.functions: dict[str, lambda_.DockerImageFunction] = {}
        for spec in IMAGE_FUNCTIONS:
            self.functions[spec.handler] = self._image_function(
                spec, roles[spec.handler], common_env
            )

        # ------------------------------------------------------------ state machine
        sm_logs = logs.LogGroup(
            self,
            "StateMachineLogs",
            log_group_name=f"/aws/vendedlogs/states/{self.stack_name}-training",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        # The definition is the file's text, embedded as DefinitionString (from_file would
        # upload it to S3 instead): cfn-lint checks it and `cdk diff` shows its changes.
        self.state_machine = sfn.StateMachine(
            self,
            "TrainingStateMachine",
            definition_body=sfn.DefinitionBody.from_string(ASL_PATH.read_text()),
            definition_substitutions={
                spec.substitution: self.functions[spec.handler].function_arn
                for spec in IMAGE_FUNCTIONS
                if spec.substitution
            },
            state_machine_type=sfn.StateMachineType.STANDARD,
            logs=sfn.LogOptions(
                destination=sm_logs, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
            tracing_enabled=True,
        )
        for spec in IMAGE_FUNCTIONS:
            if spec.substitution:
                self.functions[spec.handler].grant_invoke(self.state_machine)

        on_end = self.functions["on_execution_end"]

        self.execution_end_rule = events.Rule(
            self,
            "ExecutionEndRule",
            description="Training executions that end FAILED, TIMED_OUT or ABORTED",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={
                    "stateMachineArn": [self.state_machine.state_machine_arn],
                    "status": ["FAILED", "TIMED_OUT", "ABORTED"],
                },
            ),
            targets=[
                targets.LambdaFunction(
                    on_end,
                    retry_attempts=4,
                    max_event_age=cdk.Duration.hours(2),
                    # An undelivered end would leave its minion claimed: keep it to replay.
                    dead_letter_queue=sqs.Queue(
                        self,
                        "ExecutionEndDeadLetters",
                        encryption=sqs.QueueEncryption.SQS_MANAGED,
                        enforce_ssl=True,
                        retention_period=cdk.Duration.days(14),
                    ),
                )
            ],
        )

        # ---------------------------------------------------------------- the API
        self._api(auth_mode, common_env)

        # ---------------------------------------------------------------- outputs
        cdk.CfnOutput(self, "StateMachineArn", value=self.state_machine.state_machine_arn)
        cdk.CfnOutput(self, "JobsTableName", value=self.jobs_table.table_name)
        cdk.CfnOutput(self, "MinionsTableName", value=self.minions_table.table_name)
        cdk.CfnOutput(self, "CountersTableName", value=self.counters_table.table_name)
        cdk.CfnOutput(self, "DatasetBucketName", value=self.dataset_bucket.bucket_name)
        cdk.CfnOutput(self, "QueryFunctionName", value=self.functions["query"].function_name)
        cdk.CfnOutput(self, "OpenSearchUrl", value=kb_env["OPENSEARCH_URL"])

    # ------------------------------------------------------------------ helpers
    def _image_function(
        self, spec: ImageFunction, role: iam.Role, env: Mapping[str, str]
    ) -> lambda_.DockerImageFunction:
        log_group = logs.LogGroup(
            self,
            f"{spec.construct_id}Logs",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        log_group.grant_write(role)
        fn = lambda_.DockerImageFunction(
            self,
            spec.construct_id,
            code=lambda_.DockerImageCode.from_image_asset(
                directory=str(REPO_ROOT),
                file=DOCKERFILE,
                cmd=[f"chalicelib.step_lambdas.{spec.handler}"],
                exclude=IMAGE_CONTEXT_EXCLUDE,
                ignore_mode=cdk.IgnoreMode.DOCKER,
                platform=cdk.aws_ecr_assets.Platform.LINUX_AMD64,
            ),
            architecture=lambda_.Architecture.X86_64,
            description=f"chalicelib.step_lambdas.{spec.handler}",
            memory_size=spec.memory_mb,
            timeout=cdk.Duration.seconds(spec.timeout_s),
            role=role,
            log_group=log_group,
            tracing=lambda_.Tracing.ACTIVE,
            # Datasets are downloaded to /tmp (chalicelib Limits.max_download_bytes is 1 GiB).
            ephemeral_storage_size=cdk.Size.mebibytes(EPHEMERAL_MB),
            environment={**env, "HF_HUB_OFFLINE": "1"},
        )
        self._grant_data(
            role, jobs=spec.jobs, minions=spec.minions, bucket=spec.bucket, counters=""
        )
        return fn

    def _grant_data(
        self,
        role: iam.IRole,
        *,
        jobs: str,
        minions: str,
        counters: str,
        bucket: str,
    ) -> None:
        for table, level in (
            (self.jobs_table, jobs),
            (self.minions_table, minions),
            (self.counters_table, counters),
        ):
            if level == "r":
                table.grant_read_data(role)
            elif level == "rw":
                table.grant_read_write_data(role)
        if bucket in ("r", "rw"):
            self.dataset_bucket.grant_read(role)
        if bucket == "rw":
            self.dataset_bucket.grant_put(role, ARTIFACTS_PREFIX)

    def _serverless_collection(
        self, readers: list[iam.Role], writers: list[iam.Role]
    ) -> dict[str, str]:
        name = _context(self, "collection_name")
        collection_resource = [f"collection/{name}"]
        encryption = aoss.CfnSecurityPolicy(
            self,
            "KbEncryptionPolicy",
            name=f"{name}-enc",
            type="encryption",
            policy=cdk.Stack.of(self).to_json_string(
                {
                    "Rules": [{"ResourceType": "collection", "Resource": collection_resource}],
                    "AWSOwnedKey": True,
                }
            ),
        )
        network = aoss.CfnSecurityPolicy(
            self,
            "KbNetworkPolicy",
            name=f"{name}-net",
            type="network",
            # Lambdas run outside a VPC, so the endpoint is public; the data-access policy
            # and IAM (SigV4 + aoss:APIAccessAll) decide who gets in. No dashboards.
            policy=cdk.Stack.of(self).to_json_string(
                [
                    {
                        "Rules": [{"ResourceType": "collection", "Resource": collection_resource}],
                        "AllowFromPublic": True,
                    }
                ]
            ),
        )
        self.collection = aoss.CfnCollection(
            self,
            "KbCollection",
            name=name,
            type="VECTORSEARCH",
            description="Minion knowledge bases (versioned indexes + aliases)",
            standby_replicas=_context(self, "aoss_standby_replicas"),
        )
        self.collection.node.add_dependency(encryption, network)

        index_resource = [f"index/{name}/*"]
        read_index = ["aoss:DescribeIndex", "aoss:ReadDocument"]
        write_index = [
            *read_index,
            "aoss:CreateIndex",
            "aoss:DeleteIndex",
            "aoss:UpdateIndex",
            "aoss:WriteDocument",
        ]
        rules = []
        if readers:
            rules.append(
                {
                    "Description": "read minion indexes",
                    "Rules": [
                        {"ResourceType": "index", "Resource": index_resource,
                         "Permission": read_index},
                        {"ResourceType": "collection", "Resource": collection_resource,
                         "Permission": ["aoss:DescribeCollectionItems"]},
                    ],
                    "Principal": [r.role_arn for r in readers],
                }
            )  # fmt: skip
        if writers:
            rules.append(
                {
                    "Description": "create, fill, alias and delete minion indexes",
                    "Rules": [
                        {"ResourceType": "index", "Resource": index_resource,
                         "Permission": write_index},
                        {"ResourceType": "collection", "Resource": collection_resource,
                         "Permission": ["aoss:DescribeCollectionItems",
                                        "aoss:CreateCollectionItems",
                                        "aoss:UpdateCollectionItems"]},
                    ],
                    "Principal": [w.role_arn for w in writers],
                }
            )  # fmt: skip
        self.data_access_policy = aoss.CfnAccessPolicy(
            self,
            "KbDataAccessPolicy",
            name=f"{name}-data",
            type="data",
            policy=cdk.Stack.of(self).to_json_string(rules),
        )
        for role in (*readers, *writers):
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["aoss:APIAccessAll"], resources=[self.collection.attr_arn]
                )
            )
        return {
            "OPENSEARCH_URL": self.collection.attr_collection_endpoint,
            "OPENSEARCH_SERVICE": "aoss",
        }

    def _managed_domain(self, readers: list[iam.Role], writers: list[iam.Role]) -> dict[str, str]:
        self.domain = opensearch.Domain(
            self,
            "KbDomain",
            version=opensearch.EngineVersion.OPENSEARCH_2_19,
            capacity=opensearch.CapacityConfig(
                data_nodes=1,
                data_node_instance_type=_context(self, "domain_instance_type"),
                multi_az_with_standby_enabled=False,
            ),
            ebs=opensearch.EbsOptions(
                volume_size=10, volume_type=cdk.aws_ec2.EbsDeviceVolumeType.GP3
            ),
            zone_awareness=opensearch.ZoneAwarenessConfig(enabled=False),
            encryption_at_rest=opensearch.EncryptionAtRestOptions(enabled=True),
            node_to_node_encryption=True,
            enforce_https=True,
            tls_security_policy=opensearch.TLSSecurityPolicy.TLS_1_2,
            # Indexes are rebuilt by re-training from the retained datasets.
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        for role in readers:
            self.domain.grant_read(role)
        for role in writers:
            self.domain.grant_read_write(role)
        return {
            "OPENSEARCH_URL": "https://" + self.domain.domain_endpoint,
            "OPENSEARCH_SERVICE": "es",
        }

    def _api(self, auth_mode: str, common_env: Mapping[str, str]) -> None:
        api_role = iam.Role(
            self,
            "ApiHandlerRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Chalice API (minion-training)",
        )
        env = {
            **common_env,
            "STATE_MACHINE_ARN": self.state_machine.state_machine_arn,
            "QUERY_FUNCTION": self.functions["query"].function_name,
            "AUTH_MODE": auth_mode,
        }
        if auth_mode == "cognito":
            self.user_pool = cognito.UserPool(
                self,
                "UserPool",
                self_sign_up_enabled=False,
                sign_in_aliases=cognito.SignInAliases(email=True),
                password_policy=cognito.PasswordPolicy(min_length=12),
                account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
                removal_policy=cdk.RemovalPolicy.RETAIN,
            )
            self.user_pool_client = self.user_pool.add_client(
                "ApiClient",
                auth_flows=cognito.AuthFlow(user_srp=True),
                generate_secret=False,
            )
            env["COGNITO_USER_POOL_ARN"] = self.user_pool.user_pool_arn
            cdk.CfnOutput(self, "UserPoolId", value=self.user_pool.user_pool_id)
            cdk.CfnOutput(self, "UserPoolClientId", value=self.user_pool_client.user_pool_client_id)

        # Chalice copies environment_variables into os.environ before importing app.py, so
        # AUTH_MODE / COGNITO_USER_POOL_ARN choose the authorizer at package time too.
        with _isolated_app_import(REPO_ROOT, env):
            self.api = Chalice(
                self,
                "Api",
                source_dir=str(REPO_ROOT),
                stage_config={
                    "api_gateway_stage": "api",
                    "api_gateway_endpoint_type": "REGIONAL",
                    "manage_iam_role": False,
                    "iam_role_arn": api_role.role_arn,
                    "autogen_policy": False,
                    "xray": True,
                    "lambda_memory_size": 512,
                    "lambda_timeout": 30,
                    "environment_variables": env,
                },
            )

        handler = self.api.get_resource("APIHandler")
        api_logs = logs.LogGroup(
            self,
            "ApiHandlerLogs",
            log_group_name=cdk.Fn.join("", ["/aws/lambda/", handler.ref]),
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        api_logs.grant_write(api_role)
        api_role.add_to_policy(
            iam.PolicyStatement(
                actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"], resources=["*"]
            )
        )
        self._grant_data(api_role, jobs="rw", minions="rw", counters="rw", bucket="")
        # The API only signs upload URLs (presigned PUT) for uploads/; it reads no objects.
        self.dataset_bucket.grant_put(api_role, UPLOADS_PREFIX)
        self.state_machine.grant_start_execution(api_role)
        self.state_machine.grant_execution(
            api_role, "states:DescribeExecution", "states:StopExecution"
        )
        self.functions["query"].grant_invoke(api_role)

        rest_api_id = self.api.get_resource("RestAPI").ref
        api_url = cdk.Fn.sub(
            "https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/api/",
            {"Api": rest_api_id},
        )
        cdk.CfnOutput(self, "ApiUrl", value=api_url)
        if auth_mode == "iam":
            invoke = iam.ManagedPolicy(
                self,
                "ApiInvokePolicy",
                description="Attach to the users/roles allowed to call the minion-training API",
                statements=[
                    iam.PolicyStatement(
                        actions=["execute-api:Invoke"],
                        resources=[
                            self.format_arn(
                                service="execute-api",
                                resource=rest_api_id,
                                resource_name="api/*",
                            )
                        ],
                    )
                ],
            )
            cdk.CfnOutput(self, "ApiInvokePolicyArn", value=invoke.managed_policy_arn)
