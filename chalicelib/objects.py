"""S3 objects: read sources, write targets, presign URLs for readers."""

from __future__ import annotations

from datetime import datetime, timedelta

from chalicelib import aws

PRESIGN_SECONDS = 3600


def read(bucket: str, key: str) -> bytes:
    return aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def write(bucket: str, key: str, data: bytes, content_type: str) -> None:
    aws.client("s3").put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)


def presign(
    bucket: str, key: str, now: datetime, seconds: int = PRESIGN_SECONDS
) -> tuple[str, datetime]:
    """A GET URL for the object and the moment it stops working (no network call)."""
    url = aws.client("s3").generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=seconds
    )
    return url, now + timedelta(seconds=seconds)


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
