"""What a task's webhook sends, by the format it asked for (see `Webhook.format`)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import TYPE_CHECKING, Any

from chalicelib.model import Task, Webhook

if TYPE_CHECKING:
    from chalicelib.settings import Settings


def webhook_payload(
    task: Task, event_type: str, settings: Settings | None = None
) -> dict[str, Any]:
    """standard: the job document; autovid: seed 002's; transflow: seed 003's AssemblyStatus.
    Their links live as long as on the contract's own surface (the origins' without settings)."""
    hook = task.webhook
    style = hook.format if hook else "standard"
    if style == "transflow":
        from chalicelib.contracts import assembly

        if settings is None:
            return assembly.view(task)
        return assembly.view(task, settings.link(settings.assembly_url_expires_seconds))
    if style == "autovid":
        from chalicelib.contracts import autovid

        link = settings.link(settings.autovid_url_expires_seconds) if settings else None
        document = autovid.job_document(task, link or autovid.ORIGIN_LINK)
    else:
        from chalicelib.contracts.jobs import job_document

        document = job_document(task)
    document["event"] = event_type
    if hook and hook.metadata:
        document["metadata"] = {**document.get("metadata", {}), **hook.metadata}
    return document


def delivery_options(hook: Webhook | None) -> str:
    """What the delivery needs besides the URL and body: stored with the event."""
    if hook is None:
        return "{}"
    return json.dumps({"format": hook.format, "method": hook.method, "headers": hook.headers})


# auto-vid's webhook_notifier: `headers.setdefault("User-Agent", "Auto-Vid/1.0")`; its
# receivers may filter on it.
AUTOVID_USER_AGENT = "Auto-Vid/1.0"


def delivery_headers(options: dict[str, Any], body: str, owner_secret: str) -> dict[str, str]:
    """The caller's own headers, and each origin's own: seed 003's signature (by the owner's
    secret) for transflow, seed 002's User-Agent for autovid."""
    headers = dict(options.get("headers") or {})
    if options.get("format") == "transflow":
        headers["X-Transflow-Signature"] = transflow_signature(owner_secret, body)
    if options.get("format") == "autovid":
        headers["User-Agent"] = AUTOVID_USER_AGENT
    return headers


def transflow_signature(secret: str, body: str) -> str:
    """transflow's `sha256=<hex HMAC-SHA256 of the body>`, keyed with the secret's text."""
    digest = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class _Rendering:
    """The formats above, as `webhooks.Rendering` expects them."""

    payload = staticmethod(webhook_payload)
    options = staticmethod(delivery_options)
    headers = staticmethod(delivery_headers)


RENDERING = _Rendering()
