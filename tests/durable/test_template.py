"""The SAM template (workflows/durable/template.yaml): cfn-lint clean, and the properties that make
the deployment behave as designed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

TEMPLATE = Path(__file__).resolve().parents[2] / "workflows" / "durable" / "template.yaml"
CFN_LINT = Path(sys.executable).with_name("cfn-lint")


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation short-form tags (!Ref, !Sub, ...) as plain values."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {f"Fn::{suffix}" if suffix not in ("Ref", "Condition") else suffix: value}


_CfnLoader.add_multi_constructor("!", _tag)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


def test_cfn_lint_passes() -> None:
    assert CFN_LINT.exists(), f"cfn-lint not found next to {sys.executable}"
    result = subprocess.run(
        [str(CFN_LINT), "--format", "parseable", str(TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_workflow_is_a_durable_function_invoked_through_an_alias(template: dict[str, Any]) -> None:
    workflow = template["Resources"]["WorkflowFunction"]["Properties"]
    assert workflow["Handler"] == "workflows.durable.workflow.handler"
    assert set(workflow["DurableConfig"]) == {"ExecutionTimeout", "RetentionPeriodInDays"}
    assert workflow["AutoPublishAlias"] == "live"
    api_env = template["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert api_env["MATCHING_WORKFLOW_FUNCTION_NAME"]["Fn::Sub"].endswith("-matching-workflow:live")


def test_the_durable_api_url_requires_iam_and_only_the_provider_url_is_public(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    assert resources["ApiUrl"]["Properties"]["AuthType"] == "AWS_IAM"
    public = [
        r for r in resources.values() if r["Type"] == "AWS::Lambda::Url" and r["Properties"]["AuthType"] == "NONE"
    ]
    assert len(public) == 1
    assert public[0]["Properties"]["TargetFunctionArn"] == {"Fn::GetAtt": "VettingCallbackFunction.Arn"}
    provider_env = resources["VettingCallbackFunction"]["Properties"]["Environment"]["Variables"]
    assert provider_env["MATCHING_API_ROUTES"] == "vetting-callback"
    for permission in ("ApiUrlInvokePermission", "ApiFunctionInvokePermission"):
        assert resources[permission]["Properties"]["Principal"] == {"Ref": "ConsolePrincipalArn"}


def test_the_state_table_has_the_sync_index(template: dict[str, Any]) -> None:
    table = template["Resources"]["StateTable"]["Properties"]
    assert table["TableName"] == "matching-workflow-state"
    assert table["KeySchema"] == [{"AttributeName": "search_id", "KeyType": "HASH"}]
    [index] = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "sync-index"
    assert [k["AttributeName"] for k in index["KeySchema"]] == ["sync_bucket", "updated_at"]


def test_secrets_are_noecho_parameters(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    for name in ("InternalToken", "WebhookSecret", "VettingApiKey"):
        assert parameters[name].get("NoEcho") is True, name


def test_iam_is_least_privilege(template: dict[str, Any]) -> None:
    roles = {k: v for k, v in template["Resources"].items() if v["Type"] == "AWS::IAM::Role"}
    assert set(roles) == {"WorkflowRole", "ApiRole", "VettingCallbackRole"}
    actions: dict[str, set[str]] = {}
    for name, role in roles.items():
        assert "ManagedPolicyArns" not in role["Properties"]  # no broad AWS-managed policies
        for policy in role["Properties"]["Policies"]:
            for statement in policy["PolicyDocument"]["Statement"]:
                assert statement["Effect"] == "Allow"
                assert statement["Resource"] != "*", f"{name}: {statement}"
                granted = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert all("*" not in action for action in granted), f"{name}: {granted}"
                actions.setdefault(name, set()).update(granted)
    # Each function gets only what its code calls.
    assert "lambda:CheckpointDurableExecution" in actions["WorkflowRole"]
    assert "lambda:InvokeFunction" not in actions["WorkflowRole"]
    assert {"lambda:InvokeFunction", "lambda:StopDurableExecution", "dynamodb:BatchGetItem"} <= actions["ApiRole"]
    assert "lambda:CheckpointDurableExecution" not in actions["ApiRole"]
    assert actions["VettingCallbackRole"] == {
        "lambda:SendDurableExecutionCallbackSuccess",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            assert "Role" in resource["Properties"] and "Policies" not in resource["Properties"]


def test_undeliverable_callbacks_go_to_an_encrypted_dead_letter_queue(template: dict[str, Any]) -> None:
    queue = template["Resources"]["CallbackDeadLetterQueue"]
    assert queue["Type"] == "AWS::SQS::Queue"
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    env = template["Resources"]["WorkflowFunction"]["Properties"]["Environment"]["Variables"]
    assert env["MATCHING_CALLBACK_DLQ_URL"] == {"Ref": "CallbackDeadLetterQueue"}
