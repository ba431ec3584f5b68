"""moto's CloudFormation, made to do two things CloudFormation does and moto 5.2.5 does not.

- **A list item that resolves to `AWS::NoValue` is dropped.** CloudFormation removes it:
  `{"Fn::If": [cond, item, {"Ref": "AWS::NoValue"}]}` in a list is the item or nothing. moto
  resolves it to None and leaves the None in the list, so a table whose
  `GlobalSecondaryIndexes` holds one (infra/resources.json keeps the retired index
  `by_owner_type` only while a stack upgrades) fails to create. A None in a template's list
  has no other meaning: JSON's null is not a CloudFormation value.
- **A stack update changes a table's indexes in place.** moto has no update for a table, so
  an update that changes one loses the table from the stack (and fails at its outputs).
  Here it adds or drops the index, keeping the items, and refuses more than one index
  created or deleted in one update, as DynamoDB does ("Cannot perform more than one GSI
  creation or deletion in a single update"). Any other change of a table's properties is
  left as moto leaves it.
- **An update that changes only a parameter updates the resources of its conditions.**
  moto updates a resource whose own text changed or that `Ref`s a changed parameter, not
  one whose `Fn::If` (or `Condition`) names a condition on that parameter. Here those are
  updated too (a condition read through another condition is not followed).

Every emulator this project runs applies `patch_cloudformation()` before any template is
read: `make dev`'s (local/emulator.py), the tests' (tests/conftest.py, local/stack.py) and
the deploy rehearsal's (infra/emulator.py). Dev tooling only: nothing of it is deployed.
"""

from __future__ import annotations

from typing import Any

ONE_INDEX_PER_UPDATE = "Cannot perform more than one GSI creation or deletion in a single update"


def patch_cloudformation() -> None:
    """Apply both patches in this process (idempotent)."""
    from moto.cloudformation import parsing
    from moto.dynamodb.models.table import Table

    if not getattr(parsing.clean_json, "drops_no_value", False):
        parsing.clean_json = _dropping_no_value(parsing.clean_json)
    if not getattr(parsing.ResourceMap.build_resource_diff, "follows_conditions", False):
        parsing.ResourceMap.build_resource_diff = _following_conditions(  # type: ignore[method-assign]
            parsing.ResourceMap.build_resource_diff
        )
    Table.update_from_cloudformation_json = classmethod(update_table)  # type: ignore[assignment]


def _found(value: Any, pick: Any) -> set[str]:
    """Every name `pick` finds in a template's value, at any depth."""
    found: set[str] = set()
    if isinstance(value, dict):
        found |= pick(value)
        for item in value.values():
            found |= _found(item, pick)
    elif isinstance(value, list):
        for item in value:
            found |= _found(item, pick)
    return found


def _refs(node: dict[str, Any]) -> set[str]:
    return {node["Ref"]} if isinstance(node.get("Ref"), str) else set()


def _conditions(node: dict[str, Any]) -> set[str]:
    names = {node["Condition"]} if isinstance(node.get("Condition"), str) else set()
    if isinstance(node.get("Fn::If"), list) and node["Fn::If"]:
        names.add(node["Fn::If"][0])
    return names


def _following_conditions(original: Any) -> Any:
    def build_resource_diff(
        self: Any, other_template: dict[str, Any], parameters: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        actions = original(self, other_template, parameters)
        changed = {
            name
            for name, value in (parameters or {}).items()
            if self.input_parameters.get(name) != value
        }
        affected = {
            name
            for name, definition in other_template.get("Conditions", {}).items()
            if _found(definition, _refs) & changed
        }
        for name, resource in other_template["Resources"].items():
            if (
                name in self._resource_json_map
                and name not in actions["Modify"]
                and _found(resource, _conditions) & affected
            ):
                actions["Modify"].append(name)
        return actions

    build_resource_diff.follows_conditions = True  # type: ignore[attr-defined]
    return build_resource_diff


def _dropping_no_value(original: Any) -> Any:
    def clean_json(resource_json: Any, resources_map: Any) -> Any:
        # The original recurses through the module's name, so this sees every nested list.
        cleaned = original(resource_json, resources_map)
        if isinstance(resource_json, list):
            return [value for value in cleaned if value is not None]
        return cleaned

    clean_json.drops_no_value = True  # type: ignore[attr-defined]
    return clean_json


def index_changes(table: Any, properties: dict[str, Any]) -> list[dict[str, Any]]:
    """UpdateTable's GlobalSecondaryIndexUpdates that take `table` to the template's
    indexes: a Delete for each index the template no longer has, a Create for each new one."""
    wanted = {index["IndexName"]: index for index in properties.get("GlobalSecondaryIndexes", [])}
    present = {index.name for index in table.global_indexes}
    deletes = [{"Delete": {"IndexName": name}} for name in sorted(present - set(wanted))]
    creates = [{"Create": wanted[name]} for name in sorted(set(wanted) - present)]
    return deletes + creates


def update_table(
    cls: Any,
    original_resource: Any,
    new_resource_name: str,
    cloudformation_json: dict[str, Any],
    account_id: str,
    region_name: str,
) -> Any:
    """Table.update_from_cloudformation_json: the same table, its indexes changed."""
    from moto.dynamodb.models import dynamodb_backends

    properties = cloudformation_json["Properties"]
    changes = index_changes(original_resource, properties)
    if len(changes) > 1:
        raise ValueError(ONE_INDEX_PER_UPDATE)
    dynamodb_backends[account_id][region_name].update_table(
        name=original_resource.name,
        attr_definitions=properties.get("AttributeDefinitions", []),
        global_index=changes,
        throughput={},
        billing_mode="",
        stream_spec={},
        deletion_protection_enabled=None,
        warm_throughput=None,
    )
    return original_resource
