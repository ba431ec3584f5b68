"""The remote workers' ECS Fargate template (infra/worker-fargate.yaml): what the emulator can
create is created and read back (infra/worker_rehearsal.py, also run by `make
deploy-rehearsal`); what it cannot is checked on the template itself, and by cfn-lint."""

import copy
import subprocess
import warnings

import boto3
import pytest
from moto import mock_aws

from infra import worker_rehearsal
from tests.conftest import ROOT


@pytest.fixture
def emulated():
    with warnings.catch_warnings(), mock_aws():
        warnings.simplefilter("ignore")  # moto's CloudFormation skips the scaling resources
        yield lambda service: boto3.client(service, region_name="us-east-1")


@pytest.fixture(scope="module")
def template():
    return worker_rehearsal.load_template()


def test_the_template_creates_a_worker_service_that_scales_on_its_pool_queue(emulated):
    lines = worker_rehearsal.rehearse(emulated)
    assert "TargetTrackingScaling, StepScaling" in lines[0]


def test_the_worker_task_runs_on_fargate_with_no_role_of_its_own(template):
    task = template["Resources"]["TaskDefinition"]["Properties"]
    assert task["RequiresCompatibilities"] == ["FARGATE"]
    assert task["NetworkMode"] == "awsvpc"
    assert "TaskRoleArn" not in task  # no AWS credentials in the worker
    assert template["Resources"]["Service"]["Properties"]["LaunchType"] == "FARGATE"


def test_the_service_key_comes_from_secrets_manager_not_the_template(template):
    [container] = template["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    assert container["Secrets"] == [
        {"Name": "TASKSTATUS_API_KEY", "ValueFrom": {"Ref": "ApiKeySecretArn"}}
    ]
    assert [e["Name"] for e in container["Environment"]] == ["TASKSTATUS_URL"]


def test_the_longest_grace_fits_the_stop_timeout_with_the_claims_wound_down(template):
    [container] = template["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    longest = template["Parameters"]["GraceSeconds"]["MaxValue"]
    assert longest + worker_rehearsal.CLAIM_WIND_DOWN_SECONDS <= container["StopTimeout"] <= 120


def read_back(emulated) -> tuple[dict, dict]:
    """What the rehearsal checks, from a stack on the emulator."""
    given = worker_rehearsal.parameters(emulated, "taskstatus-dev")
    worker_rehearsal.create_stack(emulated("cloudformation"), given)
    ecs = emulated("ecs")
    cluster = ecs.list_clusters()["clusterArns"][0]
    [service] = ecs.describe_services(cluster=cluster, services=["worker-remote"])["services"]
    task = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])
    names = {**given, "Cluster": cluster.rsplit("/", 1)[1], "Service.Name": "worker-remote"}
    policies = worker_rehearsal.register_scaling(emulated, names)
    description = {"service": service, "task_definition": task["taskDefinition"]}
    return {**description, "policies": policies}, given


@pytest.mark.parametrize(
    "damage, reported",
    [
        (lambda d: d["task_definition"].update(taskRoleArn="arn:aws:iam::1:role/r"), "has a role"),
        (lambda d: _container(d)["command"].__setitem__(3, "other.tasks"), "--processors"),
        (lambda d: _container(d).update(secrets=[]), "TASKSTATUS_API_KEY"),
        (
            lambda d: _container(d)["environment"].append(
                {"name": "AWS_ACCESS_KEY_ID", "value": "x"}
            ),
            "AWS settings",
        ),
        (lambda d: _container(d).update(stopTimeout=30), "stopTimeout"),
        (
            lambda d: d.update(
                policies=[p for p in d["policies"] if p["PolicyType"] != "TargetTrackingScaling"]
            ),
            "no target tracking",
        ),
    ],
)
def test_the_rehearsal_reports_each_kind_of_damage(emulated, damage, reported):
    description, given = read_back(emulated)
    assert worker_rehearsal.problems(description, given) == []
    damaged = copy.deepcopy(description)
    damage(damaged)
    assert any(reported in problem for problem in worker_rehearsal.problems(damaged, given))


def _container(description: dict) -> dict:
    return description["task_definition"]["containerDefinitions"][0]


@pytest.mark.slow  # cfn-lint loads every resource specification (seconds)
def test_cfn_lint_passes_the_template():
    lint = ROOT / ".venv" / "bin" / "cfn-lint"
    result = subprocess.run(
        [str(lint), str(worker_rehearsal.TEMPLATE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
