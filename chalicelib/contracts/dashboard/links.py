"""One-time sign-in links for the dashboard: `/dashboard#code=<code>` rather than `#token=`.

A browser writes every address it opens, fragment included, to its history database when
the page is committed, before the page runs a line of script; replacing the history entry
afterwards leaves that row in place (Chromium, read in tests/e2e/test_dashboard_e2e.py).
A `#token=` link therefore leaves a working credential on disk for as long as the token
lives. A link carries a code instead: redeemed once, within LINK_SECONDS and never after
its credential expires, for the credential it was made with. What the history keeps
afterwards opens nothing.

Records table: pk `signin#<SHA-256 of the code>`, sk `signin`: the credential encrypted
with a key derived from the code (Fernet: the table alone cannot recover it), and
`expires_at` (the table's TTL, and checked on redemption). Redeeming is one conditional
DeleteItem, so two tabs racing for one code cannot both win.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib import timefmt
from chalicelib.edge import http
from chalicelib.edge.http_errors import NotFound, Unprocessable
from chalicelib.model import utcnow
from chalicelib.records import RecordsTable

if TYPE_CHECKING:
    from chalicelib.bootstrap import Container

LINK_SECONDS = 600
CODE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")  # 32 random bytes, url-safe base64
_KEY_CONTEXT = b"taskstatus dashboard sign-in link|"


def _key(code: str) -> dict[str, Any]:
    digest = hashlib.sha256(code.encode()).hexdigest()
    return {"pk": {"S": f"signin#{digest}"}, "sk": {"S": "signin"}}


def _cipher(code: str) -> Any:
    from cryptography.fernet import Fernet

    key = hashlib.sha256(_KEY_CONTEXT + code.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def link_expiry(now: datetime, credential_expires_at: int | None) -> datetime:
    """LINK_SECONDS from now, or when the credential expires if that is sooner."""
    latest = now.replace(microsecond=0) + timedelta(seconds=LINK_SECONDS)
    if credential_expires_at is None:
        return latest
    return min(latest, datetime.fromtimestamp(credential_expires_at, tz=now.tzinfo))


class SignInLinks(RecordsTable):
    def create(self, credential: str, expires_at: datetime) -> str:
        """Store `credential` behind a new code, until `expires_at`; return the code."""
        code = secrets.token_urlsafe(32)
        self._ddb.put_item(
            TableName=self.table,
            Item={
                **_key(code),
                "credential": {"S": _cipher(code).encrypt(credential.encode()).decode()},
                "expires_at": {"N": str(int(expires_at.timestamp()))},
            },
            ConditionExpression="attribute_not_exists(pk)",
        )
        return code

    def redeem(self, code: str, now: datetime) -> str | None:
        """The credential behind `code`, once; None if it was used, expired or never made."""
        if not CODE_PATTERN.match(code):
            return None
        try:
            item = self._ddb.delete_item(
                TableName=self.table,
                Key=_key(code),
                ConditionExpression="attribute_exists(pk) AND expires_at > :now",
                ExpressionAttributeValues={":now": {"N": str(int(now.timestamp()))}},
                ReturnValues="ALL_OLD",
            )["Attributes"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        decrypted: bytes = _cipher(code).decrypt(item["credential"]["S"].encode())
        return decrypted.decode()


# -- REST: POST /dashboard/links (signed in), POST /dashboard/sign-in (the code is the key) ---


def session(container: Container, request: Any) -> Any:
    """Who the page's credential is, and whether it opens the operator's console. The page
    asks this before any /ops route, so a user's page never meets a 403 (which a browser
    reports as a failed load)."""
    from chalicelib.edge.auth import OPERATE

    principal = http.current_principal(request)
    body = {"owner": principal.owner, "operator": OPERATE in principal.scopes}
    return http.json_response(body, 200, {"Cache-Control": "no-store"})


def create(container: Container, request: Any) -> Any:
    from chalicelib.edge.auth import credential_from_headers

    principal = http.current_principal(request)
    credential = credential_from_headers(request.headers) or ""
    expires_at = link_expiry(utcnow(), principal.expires_at)
    code = container.sign_in_links.create(credential, expires_at)
    body = {
        "fragment": f"#code={code}",
        "expiresAt": timefmt.wire(expires_at),
    }
    return http.json_response(body, 201, {"Cache-Control": "no-store"})


def sign_in(container: Container, request: Any) -> Any:
    body = http.json_body(request)
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(code, str) or not CODE_PATTERN.match(code):
        raise Unprocessable('send {"code": "<the code after #code= in the link>"}')
    credential = container.sign_in_links.redeem(code, utcnow())
    if credential is None:
        raise NotFound(
            "this sign-in link was used already or has expired (a link works once, within "
            f"{LINK_SECONDS // 60} minutes): paste a token, or ask for a new link"
        )
    return http.json_response({"token": credential}, 200, {"Cache-Control": "no-store"})
