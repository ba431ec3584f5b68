"""The remote workers' ECS Fargate template (infra/worker-fargate.yaml) on the emulator.

As far as moto goes: its CloudFormation creates the cluster, the log group, the execution
role, the task definition and the service; it has no ApplicationAutoScaling or CloudWatch
alarm resources, so those are checked apart: the scalable target and the scaling policies are
registered through moto's Application Auto Scaling API with the template's own properties
(references resolved against the stack), which checks that they name the service the stack
created. Not shown here, and said so: a container running (moto runs none), the secret
reaching the container, the metric math evaluated and a scaling happening.

Then what was created is read back and checked against what the worker needs: the worker's
command names the pool and the processors, the service key comes from Secrets Manager, the
task has no role (no AWS credentials), SIGTERM comes with time to wind down.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "worker-fargate.yaml"
STACK = "taskstatus-dev-workers-remote"
# The worker waits out a claim's long poll (20 s) and its read margin (10 s) after the grace.
CLAIM_WIND_DOWN_SECONDS = 30
NOT_IN_THE_EMULATOR = (
    "not shown on the emulator: Fargate itself (moto's CloudFormation drops the service's "
    "launch type and network, the task's compatibilities, network mode and roles), a "
    "container running, the secret reaching it, the backlog metric math evaluated, a "
    "scaling (the scale-from-zero alarm is checked by cfn-lint only)"
)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template with its short tags (!Ref, !Sub) read as their long forms."""
    from cfnlint.decode import cfn_yaml

    return cfn_yaml.load(str(path))


def resolve(value: Any, names: dict[str, Any]) -> Any:
    """Ref, Fn::Sub and Fn::GetAtt of `value`, from `names` ("Cluster", "Service.Name", ...)."""
    if isinstance(value, list):
        return [resolve(v, names) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"}:
        return names[value["Ref"]]
    if set(value) == {"Fn::GetAtt"}:
        found = value["Fn::GetAtt"]
        return names[".".join(found) if isinstance(found, list) else found]
    if set(value) == {"Fn::Sub"}:
        return re.sub(r"\$\{([^}]+)\}", lambda m: str(names[m.group(1)]), value["Fn::Sub"])
    return {k: resolve(v, names) for k, v in value.items()}


def _network(aws: Callable[[str], Any]) -> tuple[str, str]:
    ec2 = aws("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.40.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="workers", Description="workers", VpcId=vpc)
    return subnet, group["GroupId"]


def parameters(aws: Callable[[str], Any], service_stack: str) -> dict[str, str]:
    subnet, group = _network(aws)
    secret = aws("secretsmanager").create_secret(
        Name=f"{service_stack}-worker-remote", SecretString="tsk_rehearsal_worker_key"
    )
    return {
        "ServiceStack": service_stack,
        "Pool": "remote",
        "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/taskstatus-worker:1",
        "ProcessorModules": "acme_tasks.tasks",
        "TaskStatusUrl": "https://api.example.com/api",
        "ApiKeySecretArn": secret["ARN"],
        "Subnets": subnet,
        "SecurityGroups": group,
        "MinTasks": "0",
    }


def create_stack(cloudformation: Any, given: dict[str, str]) -> dict[str, Any]:
    cloudformation.create_stack(
        StackName=STACK,
        TemplateBody=TEMPLATE.read_text(),
        Capabilities=["CAPABILITY_IAM"],
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in given.items()],
    )
    for _ in range(100):
        stack = cloudformation.describe_stacks(StackName=STACK)["Stacks"][0]
        if not stack["StackStatus"].endswith("_IN_PROGRESS"):
            break
        time.sleep(0.1)
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise SystemExit(f"the worker template's stack is {stack['StackStatus']}")
    return stack


def parameter_values(template: dict[str, Any], given: dict[str, str]) -> dict[str, Any]:
    """Each parameter's value as CloudFormation would pass it: given, else its default;
    a Number as a number (the APIs take capacities and targets as numbers)."""
    values: dict[str, Any] = {}
    for name, declared in template["Parameters"].items():
        value = given.get(name, declared.get("Default"))
        if declared["Type"] == "Number" and value is not None:
            value = float(value) if "." in str(value) else int(value)
        values[name] = value
    return values


def register_scaling(aws: Callable[[str], Any], names: dict[str, Any]) -> list[dict[str, Any]]:
    """The template's scalable target and policies, through the Application Auto Scaling API."""
    template = load_template()
    names = {**names, **parameter_values(template, names)}
    resources = template["Resources"]
    scaling = aws("application-autoscaling")
    target = resolve(resources["ScalableTarget"]["Properties"], names)
    scaling.register_scalable_target(**target)
    for resource in resources.values():
        if resource["Type"] != "AWS::ApplicationAutoScaling::ScalingPolicy":
            continue
        if "Condition" in resource and names["MinTasks"] != 0:  # ScalesToZero
            continue
        properties = resolve(resource["Properties"], {**names, "ScalableTarget": None})
        properties.pop("ScalingTargetId")
        scaling.put_scaling_policy(
            ServiceNamespace=target["ServiceNamespace"],
            ResourceId=target["ResourceId"],
            ScalableDimension=target["ScalableDimension"],
            **properties,
        )
    return scaling.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]


def problems(description: dict[str, Any], given: dict[str, str]) -> list[str]:
    """What the created worker service lacks, from the read-back `description`."""
    found = []
    task = description["task_definition"]
    [container] = task["containerDefinitions"]
    command = container.get("command", [])
    for flag, value in (("--pool", given["Pool"]), ("--processors", given["ProcessorModules"])):
        if flag not in command or command[command.index(flag) + 1] != value:
            found.append(f"the worker's command does not pass {flag} {value}: {command}")
    if task.get("taskRoleArn"):
        found.append(
            f"the task has a role ({task['taskRoleArn']}): the worker must hold no AWS key"
        )
    secrets = {s["name"]: s["valueFrom"] for s in container.get("secrets", [])}
    if secrets.get("TASKSTATUS_API_KEY") != given["ApiKeySecretArn"]:
        found.append(f"TASKSTATUS_API_KEY does not come from the secret: {secrets}")
    environment = {e["name"]: e["value"] for e in container.get("environment", [])}
    if environment.get("TASKSTATUS_URL") != given["TaskStatusUrl"]:
        found.append(f"TASKSTATUS_URL is not the service's: {environment}")
    if any(name.startswith("AWS_") for name in environment):
        found.append(f"the worker's environment holds AWS settings: {sorted(environment)}")
    grace = (
        float(command[command.index("--grace-seconds") + 1]) if "--grace-seconds" in command else 30
    )
    if container.get("stopTimeout", 30) < grace + CLAIM_WIND_DOWN_SECONDS:
        found.append(
            f"stopTimeout {container.get('stopTimeout')} s is shorter than the grace ({grace} s)"
            f" and the claims' wind-down ({CLAIM_WIND_DOWN_SECONDS} s)"
        )
    service = description["service"]
    if service["taskDefinition"] != task["taskDefinitionArn"]:
        found.append(f"the service does not run the task definition: {service['taskDefinition']}")
    kinds = {p["PolicyType"] for p in description["policies"]}
    if "TargetTrackingScaling" not in kinds:
        found.append("no target tracking policy on the pool queue's backlog")
    for policy in description["policies"]:
        if policy["PolicyType"] != "TargetTrackingScaling":
            continue
        metrics = policy["TargetTrackingScalingPolicyConfiguration"][
            "CustomizedMetricSpecification"
        ]
        queues = {
            d["Value"]
            for m in metrics["Metrics"]
            if "MetricStat" in m
            for d in m["MetricStat"]["Metric"]["Dimensions"]
            if d["Name"] == "QueueName"
        }
        if queues != {f"{given['ServiceStack']}-pool-{given['Pool']}"}:
            found.append(f"the backlog is not the pool queue's: {queues}")
    return found


def rehearse(aws: Callable[[str], Any], service_stack: str = "taskstatus-dev") -> list[str]:
    """Create the worker stack on the emulator, read it back; lines of what was done, or
    SystemExit naming what is wrong."""
    given = parameters(aws, service_stack)
    stack = create_stack(aws("cloudformation"), given)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    ecs = aws("ecs")
    [service] = ecs.describe_services(
        cluster=outputs["ClusterName"], services=[outputs["ServiceName"]]
    )["services"]
    task = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])
    names = {**given, "Cluster": outputs["ClusterName"], "Service.Name": service["serviceName"]}
    policies = register_scaling(aws, names)
    description = {"service": service, "task_definition": task["taskDefinition"]}
    found = problems({**description, "policies": policies}, given)
    if found:
        raise SystemExit(
            "the worker template is not what the worker needs:\n  " + "\n  ".join(found)
        )
    return [
        f"created cluster {outputs['ClusterName']}, service {service['serviceName']}, "
        f"{len(policies)} scaling policies registered "
        f"({', '.join(p['PolicyType'] for p in policies)})",
        NOT_IN_THE_EMULATOR,
    ]
