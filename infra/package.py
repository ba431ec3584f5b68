"""`make package`: `chalice package` merged with infra/resources.json, ready for CloudFormation.

The merge template adds the data resources, points every function's event
source and environment at them by reference, turns on partial batch failure
reporting, replaces Chalice's generated role with a least-privilege one, and
adds alarms. Secrets are NoEcho template parameters, never literals.

    python -m infra.package prod build/package
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.fairness import DEFAULT_AGING_SECONDS
from chalicelib.flow import FORMS as FLOW_FORMS
from chalicelib.settings import DEFAULT_MAX_RUNNING_PER_OWNER
from infra.bytecode import add_bytecode, bytecode_problems

ROOT = Path(__file__).resolve().parent.parent
RESOURCES = ROOT / "infra" / "resources.json"
CHALICE_CONFIG = ROOT / ".chalice" / "config.json"


def reserved_concurrency(config: Path = CHALICE_CONFIG) -> dict[str, int]:
    """Each function's reserved concurrency, by its Chalice name: the executions it is sure
    to have, and the most it may take (docs/capacity.md). .chalice/config.json is the one
    source: `chalice deploy` applies it, `make package` makes each a template parameter
    with it as the default, and a queue's poller is held to its function's (queue_scaling)."""
    functions = json.loads(config.read_text())["lambda_functions"]
    return {
        name: settings["reserved_concurrency"]
        for name, settings in functions.items()
        if "reserved_concurrency" in settings
    }


def logical_id(function: str) -> str:
    """Chalice's logical id of a function in `chalice package` output (api_handler: APIHandler)."""
    if function == "api_handler":
        return "APIHandler"
    return "".join(part.capitalize() for part in function.split("_"))


def queue_scaling(function: str) -> dict[str, Any]:
    """A queue's poller invokes its function at most as often at once as the function's
    reserved concurrency: more would be throttled, and a throttled SQS invocation returns its
    messages with their receive counted, toward the dead-letter queue (Lambda's ScalingConfig,
    at least 2)."""
    return {"ScalingConfig": {"MaximumConcurrency": max(2, reserved_concurrency()[function])}}


REPORT_FAILURES = {"FunctionResponseTypes": ["ReportBatchItemFailures"]}
# One bad stream record must not hold its shard: split the batch on error, give up after a
# bounded number of retries and send what still fails to a queue an operator can inspect.
STREAM_FAILURE_HANDLING = {
    # Ten batches of a shard at once, each task's records in order (Lambda keeps the order
    # of a partition key's records): the stream handler's pass is mostly waiting on AWS.
    "ParallelizationFactor": 10,
    "BisectBatchOnFunctionError": True,
    "MaximumRetryAttempts": 10,
    "DestinationConfig": {
        "OnFailure": {"Destination": {"Fn::GetAtt": ["StreamFailuresQueue", "Arn"]}}
    },
}


# The stream's second reader, WebSocket pushes (chalicelib/realtime/pushes.py): best effort,
# so it never holds its shard for long, and a push older than a minute is not worth sending.
PUSH_STREAM = {
    "ParallelizationFactor": 10,
    "MaximumRetryAttempts": 2,
    "MaximumRecordAgeInSeconds": 60,
}


@dataclass(frozen=True)
class EventSource:
    """One event source mapping of the app, and the settings Chalice does not set itself."""

    function: str  # the handler's name in app.py (Chalice's resource name)
    logical_id: str  # Chalice's logical id of that function in `chalice package` output
    source: str  # the resource of infra/resources.json it reads
    settings: dict[str, Any]  # UpdateEventSourceMapping parameters (ARNs as Fn::GetAtt)

    @property
    def is_stream(self) -> bool:
        return self.source == "TasksTable"


# The one source of these settings: `make package` writes them into the template
# (sam_event_properties), `make deploy` applies them after `chalice deploy` (infra/deploy.py).
EVENT_SOURCES = {
    source.function: source
    for source in (
        EventSource("worker", "Worker", "TasksQueue", REPORT_FAILURES | queue_scaling("worker")),
        EventSource(
            "dead_letters",
            "DeadLetters",
            "TasksDeadLetterQueue",
            REPORT_FAILURES | queue_scaling("dead_letters"),
        ),
        EventSource(
            "webhooks", "Webhooks", "WebhooksQueue", REPORT_FAILURES | queue_scaling("webhooks")
        ),
        EventSource("stream", "Stream", "TasksTable", REPORT_FAILURES | STREAM_FAILURE_HANDLING),
        EventSource("pushes", "Pushes", "TasksTable", REPORT_FAILURES | PUSH_STREAM),
        EventSource(
            "stream_failures",
            "StreamFailures",
            "StreamFailuresQueue",
            REPORT_FAILURES | queue_scaling("stream_failures"),
        ),
    )
}


def sam_event_properties(source: EventSource) -> dict[str, Any]:
    """The SAM event's properties: its source by reference, and the shared settings."""
    properties = dict(source.settings)
    if source.is_stream:
        properties["Stream"] = {"Fn::GetAtt": [source.source, "StreamArn"]}
        properties["StartingPosition"] = "TRIM_HORIZON"
        if "DestinationConfig" in properties:
            destination = properties["DestinationConfig"]["OnFailure"]["Destination"]
            properties["DestinationConfig"] = {
                "OnFailure": {"Destination": destination, "Type": "SQS"}
            }
    else:
        # Chalice deep-merges: overriding its own Fn::Sub key replaces the literal ARN.
        properties["Queue"] = {"Fn::Sub": f"${{{source.source}.Arn}}"}
        if "ScalingConfig" in properties:  # held to the function's reservation, as deployed
            name = concurrency_parameter(source.logical_id)
            properties["ScalingConfig"] = if_reserved(
                source.logical_id, {"MaximumConcurrency": {"Ref": name}}
            )
    return properties


def concurrency_parameter(logical: str) -> str:
    return f"{logical}ReservedConcurrency"


def if_reserved(logical: str, value: Any) -> dict[str, Any]:
    """`value` where the function's reservation parameter is not 0 (0: no reservation)."""
    return {"Fn::If": [f"{logical}Reserved", value, {"Ref": "AWS::NoValue"}]}


def concurrency_rules() -> dict[str, Any]:
    """A queue's poller needs at least 2 executions (Lambda's least MaximumConcurrency): a
    queue-fed function reserves 0 (none) or at least 2, refused at the template, not halfway
    through a deployment."""
    rules = {}
    for source in EVENT_SOURCES.values():
        if source.is_stream:
            continue
        name = concurrency_parameter(source.logical_id)
        rules[f"{name}NotOne"] = {
            "Assertions": [
                {
                    "Assert": {"Fn::Not": [{"Fn::Equals": [{"Ref": name}, "1"]}]},
                    "AssertDescription": f"{name}: 0 (none reserved) or at least 2, the "
                    "fewest executions a queue's poller runs",
                }
            ]
        }
    return rules


def concurrency_settings() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The template's reserved concurrency: (parameters, conditions, function properties).
    A parameter per function, defaulting to .chalice/config.json; 0 reserves nothing (an
    account below the default quota of 1,000 cannot reserve these), where a literal 0 would
    stop the function altogether."""
    parameters, conditions, properties = {}, {}, {}
    for function, executions in reserved_concurrency().items():
        logical = logical_id(function)
        name = concurrency_parameter(logical)
        parameters[name] = {
            "Type": "Number",
            "Default": executions,
            "MinValue": 0,
            "Description": f"executions reserved for {function} (and its most at once; "
            "0: none reserved, no cap)",
        }
        conditions[f"{logical}Reserved"] = {"Fn::Not": [{"Fn::Equals": [{"Ref": name}, 0]}]}
        properties[logical] = {"ReservedConcurrentExecutions": if_reserved(logical, ref(name))}
    return parameters, conditions, properties


ALL_FUNCTIONS = [
    "APIHandler",
    "Worker",
    "DeadLetters",
    "Webhooks",
    "Stream",
    "Pushes",
    "StreamFailures",
    "Reaper",
    "Status",
    "WebsocketConnect",
    "WebsocketMessage",
    "WebsocketDisconnect",
]
WEBSOCKET_ENDPOINT = {
    "Fn::Sub": "https://${WebsocketAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}/api"
}
WEBSOCKET_CONNECTIONS = {
    "Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}"
    ":${WebsocketAPI}/*/*/@connections/*"
}

SECRET_PARAMETERS = {
    "JwtSecret": ("JWT_SECRET", "HS256 secret for bearer tokens (leave empty with JwtJwksUrl)"),
    "CursorSecret": ("CURSOR_SECRET", "HMAC key that signs list cursors"),
    "WebhookSecret": ("WEBHOOK_SECRET", "Standard Webhooks signing secret, whsec_..."),
    "WebhookPreviousSecret": ("WEBHOOK_PREVIOUS_SECRET", "the secret being rotated out, or empty"),
}
PLAIN_PARAMETERS = {
    "JwtJwksUrl": ("JWT_JWKS_URL", "JWKS URL for RS256 tokens (Cognito, Azure AD), or empty"),
    "JwtIssuer": ("JWT_ISSUER", "required `iss` of tokens, or empty"),
    "JwtAudience": ("JWT_AUDIENCE", "required `aud` of tokens; required with JwtJwksUrl"),
    "OwnerClaim": ("OWNER_CLAIM", "the token claim that names the owner (default sub; oid, tid)"),
    "JwtRequiredScopes": ("JWT_REQUIRED_SCOPES", "scopes every token must carry, or empty"),
    "CorsAllowOrigins": ("CORS_ALLOW_ORIGINS", "browser origins allowed, comma-separated"),
    "PublicReadById": ("PUBLIC_READ_BY_ID", "true: GET a task by id without credentials"),
    "MaxRunningPerOwner": (
        "MAX_RUNNING_PER_OWNER",
        "running tasks per owner at once, so one owner's backlog cannot take every worker "
        "(fair concurrency); 0: no limit",
    ),
    # flow control (chalicelib/flow.py, docs/flow-control.md): off unless set
    "TypeConcurrency": (
        "TYPE_CONCURRENCY",
        "running tasks per type group, e.g. image/*=5,email/*=20 (the first pattern that "
        "matches a type counts); empty: no limit",
    ),
    "PoolConcurrency": (
        "POOL_CONCURRENCY",
        "queued or running tasks per worker pool, e.g. remote=8 (its worker threads): the "
        "rest wait in the table in priority order; empty: no limit",
    ),
    "TypeRate": (
        "TYPE_RATE",
        "task starts per type group, e.g. email/*=10/min (units s, min, hour, day): the "
        "rest wait, never fail; empty: no limit",
    ),
    "SubmitRate": (
        "SUBMIT_RATE",
        "jobs each owner may submit, e.g. 100/min: past it a 429 with Retry-After; empty: no limit",
    ),
    "PriorityAgingSeconds": (
        "PRIORITY_AGING_SECONDS",
        "the waiting one priority level is worth, so a low priority job still starts (60)",
    ),
}
# Template rules: CloudFormation refuses a stack whose parameters would be unsafe.
RULES = {
    "JwksNeedsAudience": {
        "RuleCondition": {"Fn::Not": [{"Fn::Equals": [{"Ref": "JwtJwksUrl"}, ""]}]},
        "Assertions": [
            {
                "Assert": {"Fn::Not": [{"Fn::Equals": [{"Ref": "JwtAudience"}, ""]}]},
                "AssertDescription": "JwtAudience is required with JwtJwksUrl: without it a "
                "token the identity provider issued for any other application is accepted",
            }
        ],
    }
}


# Every queue of infra/resources.json: the app and its event sources use each (Lambda sends
# to the stream's on-failure queue with the function's role).
QUEUES = [
    "TasksQueue",
    "TasksDeadLetterQueue",
    "WebhooksQueue",
    "WebhooksDeadLetterQueue",
    "StreamFailuresQueue",
    "RemotePoolQueue",  # worker pools (chalicelib/pools.py): one queue and DLQ per pool
    "RemotePoolDeadLetterQueue",
]
# Queues that hold what failed for good: an alarm on each (see alarms()).
DEAD_LETTER_QUEUES = {
    "TasksDeadLetterQueue": "Task messages reached the dead-letter queue",
    "WebhooksDeadLetterQueue": "Webhook delivery messages reached the dead-letter queue",
    "StreamFailuresQueue": "Stream records failed every retry (replayed until they pass)",
    "RemotePoolDeadLetterQueue": "Pool task messages reached the remote pool's dead-letter "
    "queue (the reaper fails their tasks within a minute)",
}


def ref(name: str) -> dict[str, str]:
    return {"Ref": name}


def arn(name: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [name, "Arn"]}


# Which output of infra/resources.json each environment variable takes: the one list that
# `make package` (as CloudFormation expressions) and `make infra` (as values) both follow.
RESOURCE_VARIABLES = {
    "TASKS_TABLE": "TasksTableName",
    "RECORDS_TABLE": "RecordsTableName",
    "TASKS_QUEUE_NAME": "TasksQueueName",
    "TASKS_DLQ_NAME": "TasksDeadLetterQueueName",
    "WEBHOOKS_QUEUE_NAME": "WebhooksQueueName",
    "TASKS_QUEUE_URL": "TasksQueueUrl",
    "WEBHOOKS_QUEUE_URL": "WebhooksQueueUrl",
    "OBJECTS_BUCKET": "ObjectsBucketName",
    "TASKS_STREAM_ARN": "TasksStreamArn",
    "STREAM_FAILURES_QUEUE_NAME": "StreamFailuresQueueName",
    "STREAM_FAILURES_QUEUE_URL": "StreamFailuresQueueUrl",
}


def environment() -> dict[str, Any]:
    outputs = json.loads(RESOURCES.read_text())["Outputs"]
    variables: dict[str, Any] = {
        variable: outputs[output]["Value"] for variable, output in RESOURCE_VARIABLES.items()
    }
    variables["WS_ENDPOINT_URL"] = WEBSOCKET_ENDPOINT
    for parameter, (variable, _) in {**SECRET_PARAMETERS, **PLAIN_PARAMETERS}.items():
        variables[variable] = ref(parameter)
    return {"Variables": variables}


def policy(websocket_connections: Any = WEBSOCKET_CONNECTIONS) -> dict[str, Any]:
    table_arns = [arn("TasksTable"), {"Fn::Sub": "${TasksTable.Arn}/index/*"}]
    records_arns = [arn("RecordsTable"), {"Fn::Sub": "${RecordsTable.Arn}/index/*"}]
    statements = [
        {
            "Effect": "Allow",
            "Action": [
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
                "dynamodb:Query",
                "dynamodb:ConditionCheckItem",
                "dynamodb:BatchWriteItem",
                "dynamodb:BatchGetItem",  # replayed jobs of a batch (contracts/batches.py)
            ],
            "Resource": table_arns + records_arns,
        },
        {
            "Effect": "Allow",
            "Action": [
                "dynamodb:DescribeStream",
                "dynamodb:GetRecords",
                "dynamodb:GetShardIterator",
                "dynamodb:ListStreams",
            ],
            "Resource": {"Fn::GetAtt": ["TasksTable", "StreamArn"]},
        },
        {
            "Effect": "Allow",
            "Action": [
                "sqs:SendMessage",
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes",
            ],
            "Resource": [arn(queue) for queue in QUEUES],
        },
        {
            # the console's age of each queue's oldest message (chalicelib/console.py):
            # GetMetricData takes no resource-level permission
            "Effect": "Allow",
            "Action": ["cloudwatch:GetMetricData"],
            "Resource": "*",
        },
        {
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": {"Fn::Sub": "${ObjectsBucket.Arn}/*"},
        },
        {
            "Effect": "Allow",
            "Action": ["execute-api:ManageConnections"],
            "Resource": websocket_connections,
        },
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": {
                "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:*"
            },
        },
    ]
    return {
        "PolicyName": "taskstatus",
        "PolicyDocument": {"Version": "2012-10-17", "Statement": statements},
    }


def alarms() -> dict[str, Any]:
    resources: dict[str, Any] = {}
    for queue, description in DEAD_LETTER_QUEUES.items():
        # The tasks DLQ keeps its original logical id so existing stacks keep their alarm.
        name = "DeadLetterQueueAlarm" if queue == "TasksDeadLetterQueue" else f"{queue}Alarm"
        resources[name] = {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "AlarmDescription": description,
                "Namespace": "AWS/SQS",
                "MetricName": "ApproximateNumberOfMessagesVisible",
                "Dimensions": [
                    {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}
                ],
                "Statistic": "Maximum",
                "Period": 60,
                "EvaluationPeriods": 1,
                "Threshold": 0,
                "ComparisonOperator": "GreaterThanThreshold",
                "TreatMissingData": "notBreaching",
            },
        }
    for function in ALL_FUNCTIONS:
        resources[f"{function}ErrorsAlarm"] = {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "AlarmDescription": f"{function} raised errors",
                "Namespace": "AWS/Lambda",
                "MetricName": "Errors",
                "Dimensions": [{"Name": "FunctionName", "Value": ref(function)}],
                "Statistic": "Sum",
                "Period": 300,
                "EvaluationPeriods": 1,
                "Threshold": 0,
                "ComparisonOperator": "GreaterThanThreshold",
                "TreatMissingData": "notBreaching",
            },
        }
    return resources


def merge_template() -> dict[str, Any]:
    data = json.loads(RESOURCES.read_text())
    resources: dict[str, Any] = dict(data["Resources"])
    resources["DefaultRole"] = {"Properties": {"Policies": [policy()]}}
    concurrency, conditions, reservations = concurrency_settings()
    for function in ALL_FUNCTIONS:
        properties = {"Environment": environment(), **reservations.get(function, {})}
        resources[function] = {"Properties": properties}
    for source in EVENT_SOURCES.values():
        kind = "Dynamodb" if source.is_stream else "Sqs"
        resources[source.logical_id]["Properties"]["Events"] = {
            f"{source.logical_id}{kind}EventSource": {"Properties": sam_event_properties(source)}
        }
    resources.update(alarms())
    parameters = {
        name: {"Type": "String", "NoEcho": True, "Default": "", "Description": description}
        for name, (_, description) in SECRET_PARAMETERS.items()
    }
    parameters.update(
        {
            name: {"Type": "String", "Default": "", "Description": description}
            for name, (_, description) in PLAIN_PARAMETERS.items()
        }
    )
    parameters["PublicReadById"]["AllowedValues"] = ["", "false", "true"]
    parameters["MaxRunningPerOwner"].update(
        Default=str(DEFAULT_MAX_RUNNING_PER_OWNER), AllowedPattern="[0-9]{1,4}"
    )
    for name in (
        "TypeConcurrency",
        "PoolConcurrency",
        "TypeRate",
        "SubmitRate",
        "PriorityAgingSeconds",
    ):
        variable = PLAIN_PARAMETERS[name][0]
        parameters[name]["AllowedPattern"] = FLOW_FORMS[variable]
        parameters[name]["ConstraintDescription"] = f"{variable} as docs/flow-control.md writes it"
    parameters["PriorityAgingSeconds"]["Default"] = str(DEFAULT_AGING_SECONDS)
    parameters.update(concurrency)
    parameters.update(data.get("Parameters", {}))  # the data stack's own (the retired index)
    conditions.update(data.get("Conditions", {}))
    return {
        "Parameters": parameters,
        "Conditions": conditions,
        "Rules": RULES | concurrency_rules(),
        "Resources": resources,
        "Outputs": data["Outputs"],
    }


def main(stage: str, out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    merge_file = out.parent / "merge.json"
    merge_file.write_text(json.dumps(merge_template(), indent=2))
    env = {**os.environ, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
    subprocess.run(
        [
            str(Path(sys.executable).parent / "chalice"),
            "package",
            "--stage",
            stage,
            "--merge-template",
            str(merge_file),
            str(out),
        ],
        cwd=ROOT,
        env=env,
        check=True,
    )
    package = out / "deployment.zip"
    added = add_bytecode(package)
    if found := bytecode_problems(package):
        raise SystemExit("the package lacks bytecode:\n  " + "\n  ".join(found[:20]))
    template = json.loads((out / "sam.json").read_text())
    count = len(template["Resources"])
    print(f"wrote {out / 'sam.json'} ({count} resources) and {package} (+{added} .pyc)")


if __name__ == "__main__":
    main(
        sys.argv[1] if len(sys.argv) > 1 else "prod",
        sys.argv[2] if len(sys.argv) > 2 else "build/package",
    )
