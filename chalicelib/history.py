"""A task's execution history: one entry per version, written from the table's stream.

Records table layout, in the task's partition (beside its webhook events):
  pk task#<id>, sk history#<version>   status, at, by, progress, error, flow, flow_once;
                                       TTL: the task's own

`flow` lists what flow control did to that version (chalicelib/fairness.py): each park in a
waiting line, with why (owner limit, type limit, key limit), and the admission that queued it;
appended to the version's entry, as a task waits without a new version. A version is
admitted once, so its entry holds one admission however many writers admit it
(`flow_once`: `record_flow`).

An entry is put only if its key does not exist, so a stream record delivered twice (Lambda
retries a batch, the stream pump replays it) never adds a second entry for its version.
Every write of a task raises its version, so the entries are the task's whole story, each
with the writer the item names (`updated_by`: api, worker, reaper, dead-letters, ...).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import jsonsafe, timefmt
from chalicelib.model import Task
from chalicelib.records import RecordsTable

PREFIX = "history#"


def entry_sk(version: int) -> str:
    return f"{PREFIX}{version:010d}"


def entry_item(task: Task) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": {"S": f"task#{task.id}"},
        "sk": {"S": entry_sk(task.version)},
        "version": {"N": str(task.version)},
        "status": {"S": task.status.value},
        "at": {"S": timefmt.history(task.updated_at)},
        "by": {"S": task.updated_by},
        "expires_at": {"N": str(task.expires_at)},
    }
    if task.progress is not None:
        item["progress"] = {"S": jsonsafe.compact(task.progress.as_dict())}
    if task.error:
        item["error"] = {"S": task.error}
    return item


def entry_view(item: dict[str, Any]) -> dict[str, Any]:
    """The API's shape of an entry: optional fields only when the version had them."""
    view: dict[str, Any] = {
        "version": int(item["version"]["N"]),
        "status": item["status"]["S"],
        "at": item["at"]["S"],
        "by": item["by"]["S"],
    }
    if "progress" in item:
        view["progress"] = json.loads(item["progress"]["S"])
    if "error" in item:
        view["error"] = item["error"]["S"]
    if "flow" in item:
        view["flow"] = [json.loads(event["S"]) for event in item["flow"]["L"]]
    return view


@dataclass(frozen=True)
class HistoryPage:
    events: list[dict[str, Any]]
    last_version: int | None  # set when more entries may follow


class History(RecordsTable):
    def record(self, task: Task) -> bool:
        """Add the entry of this version of the task; False if it was there already."""
        return self.put_new(entry_item(task))

    def record_flow(
        self, task_id: str, version: int, event: dict[str, Any], *, once: bool = False
    ) -> bool:
        """Append a flow control event (parked, admitted) to the version's entry; False if
        the entry is gone (expired), which is then left alone, or if `once` and the version
        has an event of that kind already.

        `once` is for an admission: a version is admitted once, but the stream and the
        reaper may both admit it from its line, and a replayed batch may admit it again, so
        the entry keeps the kinds it holds (`flow_once`, a string set) and the append is
        conditional on its kind not being one of them."""
        request: dict[str, Any] = {
            "TableName": self.table,
            "Key": {"pk": {"S": f"task#{task_id}"}, "sk": {"S": entry_sk(version)}},
            "UpdateExpression": "SET flow = list_append(if_not_exists(flow, :none), :event)",
            "ConditionExpression": "attribute_exists(pk)",
            "ExpressionAttributeValues": {
                ":none": {"L": []},
                ":event": {"L": [{"S": jsonsafe.compact(event)}]},
            },
        }
        if once:
            request["UpdateExpression"] += " ADD flow_once :kinds"
            request["ConditionExpression"] += " AND NOT contains(flow_once, :kind)"
            request["ExpressionAttributeValues"].update(
                {":kinds": {"SS": [event["event"]]}, ":kind": {"S": event["event"]}}
            )
        try:
            self._ddb.update_item(**request)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def page(self, task_id: str, now: datetime, *, limit: int, after: int = 0) -> HistoryPage:
        """Entries after version `after`, oldest first: one Query."""
        response = self._ddb.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :first AND :last",
            FilterExpression="expires_at > :now",
            ExpressionAttributeValues={
                ":pk": {"S": f"task#{task_id}"},
                ":first": {"S": entry_sk(after + 1)},
                ":last": {"S": entry_sk(9_999_999_999)},
                ":now": {"N": str(int(now.timestamp()))},
            },
            Limit=limit,
        )
        items = response.get("Items", [])
        more = "LastEvaluatedKey" in response
        last = int(response["LastEvaluatedKey"]["sk"]["S"][len(PREFIX) :]) if more else None
        return HistoryPage(events=[entry_view(item) for item in items], last_version=last)
