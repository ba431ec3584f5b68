"""S3 objects: each owner's own key prefix, reads and writes, presigned URLs.

Every object a user may name lives under `users/<digest of the owner>/` in the
service's bucket. The digest has a fixed length and alphabet, so no owner value,
whatever characters it holds, can spell another owner's prefix or escape its own;
presigned URLs are only ever issued for keys under the task owner's prefix.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from chalicelib import aws

if TYPE_CHECKING:
    from chalicelib.model import Task

PRESIGN_SECONDS = 3600
SERVICE_FOLDER = "outputs/"
UPLOAD_SECONDS = 900
_UNSAFE_SEGMENT = re.compile(r"(^|/)\.{1,2}(/|$)|//|[\x00-\x1f\x7f\\]")
_FILENAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def owner_prefix(owner: str) -> str:
    return f"users/{hashlib.sha256(owner.encode()).hexdigest()[:40]}/"


def _outside_prefix(owner: str, key: str) -> str | None:
    prefix = owner_prefix(owner)
    if not key.startswith(prefix):
        return f"the key must start with your prefix {prefix!r} (POST /uploads gives you one)"
    if _UNSAFE_SEGMENT.search(key):
        return "the key must not contain empty, '.' or '..' segments, backslashes or control codes"
    return None


def key_problem(owner: str, key: str) -> str | None:
    """Why `owner` may not name `key` as a source or target, or None if they may."""
    problem = _outside_prefix(owner, key)
    if problem is None and key.startswith(f"{owner_prefix(owner)}{SERVICE_FOLDER}"):
        return f"{SERVICE_FOLDER} under your prefix is where the service writes; name another key"
    return problem


def owns(owner: str, key: str) -> bool:
    """Whether `key` lies under the owner's prefix (the service's own folder included)."""
    return _outside_prefix(owner, key) is None


def output_key(owner: str, task_id: str, name: str) -> str:
    """Where the service writes for a task (outputs, large results, webhook payloads):
    under the owner's prefix, in a folder no job may name as its source or target."""
    return f"{owner_prefix(owner)}{SERVICE_FOLDER}{task_id}/{name}"


def upload_key(owner: str, filename: str) -> str:
    name = _FILENAME_UNSAFE.sub("-", filename.rsplit("/", 1)[-1]).strip(".-")[:120] or "upload"
    return f"{owner_prefix(owner)}uploads/{uuid.uuid4()}/{name}"


class ObjectTooLarge(ValueError):
    pass


def read(bucket: str, key: str, max_bytes: int | None = None) -> bytes:
    """The object's bytes; ObjectTooLarge, before reading any, if it is over `max_bytes`."""
    response = aws.client("s3").get_object(Bucket=bucket, Key=key)
    if max_bytes is not None and response["ContentLength"] > max_bytes:
        response["Body"].close()
        raise ObjectTooLarge(f"s3://{bucket}/{key} is {response['ContentLength']} bytes")
    return response["Body"].read()


def write(bucket: str, key: str, data: bytes, content_type: str) -> None:
    aws.client("s3").put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)


@dataclass(frozen=True)
class Link:
    """How long a surface's presigned GET links live, and whose keys sign them.

    A presigned URL stops working when the credentials that signed it expire, whatever its
    X-Amz-Expires says. The function's role has session credentials that last hours, so a
    24 h or 7-day link needs a signer with long-lived keys: an IAM user allowed only
    s3:GetObject on the bucket's `users/*` (PRESIGN_ACCESS_KEY_ID, PRESIGN_SECRET_ACCESS_KEY;
    see docs/presigned-links.md). Without one, the role signs.
    """

    seconds: int = PRESIGN_SECONDS
    access_key_id: str = ""
    secret_access_key: str = field(default="", repr=False)

    def signer(self) -> object:
        if not self.access_key_id:
            return aws.client("s3")
        return aws.signing_client(self.access_key_id, self.secret_access_key)


NATIVE_LINK = Link()


def own_bucket() -> str:
    """The service's bucket (OBJECTS_BUCKET, as the settings read it): the only one it signs
    for. Read here, not from the container, so that every view may ask without wiring."""
    return os.environ.get("OBJECTS_BUCKET", "")


def presign(
    owner: str, bucket: str, key: str, now: datetime, link: Link = NATIVE_LINK
) -> tuple[str, datetime] | None:
    """A GET URL for an object of `owner` in the service's bucket and when it stops working;
    None for anyone else's, and for any other bucket (an external job's producer names its
    own objects: the service never signs for them)."""
    if bucket != own_bucket() or not owns(owner, key):
        return None
    url = link.signer().generate_presigned_url(  # type: ignore[attr-defined]
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=link.seconds
    )
    return url, now + timedelta(seconds=link.seconds)


def result_url(task: Task, now: datetime) -> str | None:
    """The presigned GET of a result kept as an object, if the task has one."""
    ref = task.result_object
    signed = presign(task.owner, ref.bucket, ref.key, now) if ref else None
    return signed[0] if signed else None


def presign_upload(
    bucket: str, key: str, content_type: str, size: int | None, now: datetime
) -> tuple[str, dict[str, str], datetime]:
    """A SigV4 PUT URL bound to the content type (and the exact size, when given)."""
    params: dict[str, object] = {"Bucket": bucket, "Key": key, "ContentType": content_type}
    headers = {"Content-Type": content_type}
    if size is not None:
        params["ContentLength"] = size
        headers["Content-Length"] = str(size)
    url = aws.client("s3").generate_presigned_url(
        "put_object", Params=params, ExpiresIn=UPLOAD_SECONDS
    )
    return url, headers, now + timedelta(seconds=UPLOAD_SECONDS)


def split_s3_uri(uri: str) -> tuple[str, str] | None:
    if not uri.startswith("s3://"):
        return None
    bucket, _, key = uri[5:].partition("/")
    return (bucket, key) if bucket and key else None


def head(bucket: str, key: str) -> tuple[int, str] | None:
    """(size, content type) of an object, or None if it is not there (or not ours to read)."""
    from botocore.exceptions import ClientError

    try:
        response = aws.client("s3").head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in {"404", "403", "NoSuchKey", "NotFound"}:
            return None
        raise
    return int(response["ContentLength"]), response.get("ContentType") or "application/octet-stream"
