"""Webhook signing secrets: one per owner, derived from the stage's WEBHOOK_SECRET.

Every owner verifies deliveries with a secret of their own, so knowing your secret
lets you check your deliveries and forge none of anyone else's. The secrets are
derived (HMAC of the owner under the stage secret), so nothing is stored and
rotating WEBHOOK_SECRET rotates every owner's secret at once; while
WEBHOOK_PREVIOUS_SECRET is set, deliveries carry a signature by each.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

PREFIX = "whsec_"
_CONTEXT = b"taskstatus/webhook-signing/v1\x00"


def _key_bytes(stage_secret: str) -> bytes:
    """The key a `whsec_<base64>` secret stands for; any other text is taken as it is."""
    if stage_secret.startswith(PREFIX):
        try:
            return base64.b64decode(stage_secret[len(PREFIX) :], validate=True)
        except binascii.Error:
            pass
    return stage_secret.encode()


def owner_secret(stage_secret: str, owner: str) -> str:
    """The owner's `whsec_...` secret under one stage secret."""
    digest = hmac.new(_key_bytes(stage_secret), _CONTEXT + owner.encode(), hashlib.sha256)
    return PREFIX + base64.b64encode(digest.digest()).decode()


class SigningSecretMissing(Exception):
    """The stage has no WEBHOOK_SECRET: nothing can be signed, so nothing is sent unsigned."""


def owner_secrets(current: str, previous: str, owner: str) -> list[str]:
    """The owner's secrets to sign with: the current one, and the previous one while rotating."""
    if not current:
        raise SigningSecretMissing(
            "WEBHOOK_SECRET is not set: set it in the stage to a long random whsec_... secret"
        )
    return [owner_secret(stage, owner) for stage in (current, previous) if stage]
