"""How long each surface's presigned links live, and who signs them.

A link is signed at every read, for the lifetime its contract's origin gave its users
(000/001 and 002: 24 h; 003: as long as presigning allows, 7 days). A presigned URL dies with
the credentials that signed it, so a dedicated signer with long-lived keys can be configured;
without one the function's role signs (docs/presigned-links.md).
"""

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib.model import Output, Status, utcnow
from chalicelib.objects import owner_prefix
from chalicelib.settings import ConfigurationError, get_settings
from tests.conftest import auth, reset_caches
from tests.unit.tasks import BUCKET, stored_task, with_objects

SIGNER_KEY_ID = "AKIASIGNEREXAMPLE0001"


@pytest.fixture
def env(monkeypatch):
    """Set variables for one test; the cached settings and clients are rebuilt both ways."""

    def set_env(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        reset_caches()

    yield set_env
    for name in (
        "AUTOVID_URL_EXPIRES_SECONDS",
        "PRESIGN_EXPIRES_SECONDS",
        "ASSEMBLY_URL_EXPIRES_SECONDS",
        "PRESIGN_ACCESS_KEY_ID",
        "PRESIGN_SECRET_ACCESS_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    reset_caches()


def query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def rendered(service):
    key = f"{owner_prefix('alice')}outputs/render/video.mp4"
    return stored_task(
        service, Status.COMPLETED, output=Output(s3Uri=f"s3://{BUCKET}/{key}", size=1234)
    )


def test_autovid_output_url_lives_24_hours_as_the_origin(client, service):
    """Closed gap: '002's `output.url` lives 1 h where auto-vid's lives 24 h'. auto-vid's
    asset_manager: `expiration_seconds = int(os.getenv("S3_PRESIGNED_URL_EXPIRATION",
    "86400"))  # 24 hours default`, and `urlExpiresAt` = now + that."""
    before = utcnow()
    output = client.http.get(f"/status/{rendered(service).id}", headers=auth()).json_body["output"]
    assert query(output["url"])["X-Amz-Expires"] == "86400"
    expires = before.replace(microsecond=0) + timedelta(hours=24)
    stated = output["urlExpiresAt"]
    assert abs((_parse(stated) - expires).total_seconds()) <= 5


def test_autovid_output_url_lifetime_is_configurable(client, service, env):
    env(AUTOVID_URL_EXPIRES_SECONDS="43200")
    output = client.http.get(f"/status/{rendered(service).id}", headers=auth()).json_body["output"]
    assert query(output["url"])["X-Amz-Expires"] == "43200"


def test_the_native_output_url_keeps_its_hour(client, service):
    """Only the contracts whose origins gave longer links get them."""
    output = client.http.get(f"/jobs/{rendered(service).id}", headers=auth()).json_body["output"]
    assert query(output["url"])["X-Amz-Expires"] == "3600"


LIFETIMES = [
    "PRESIGN_EXPIRES_SECONDS",
    "AUTOVID_URL_EXPIRES_SECONDS",
    "ASSEMBLY_URL_EXPIRES_SECONDS",
]


@pytest.mark.parametrize("name", LIFETIMES)
@pytest.mark.parametrize("value", ["0", "604801", "a day"])
def test_a_lifetime_presigning_cannot_give_is_refused_at_start(env, name, value):
    """S3 refuses a SigV4 link whose X-Amz-Expires is over 7 days: a stage configured for one
    would hand out links that never work, so it does not start."""
    env(**{name: value})
    with pytest.raises(ConfigurationError, match=name):
        get_settings()


def test_the_longest_lifetime_presigning_allows_is_accepted(env):
    env(ASSEMBLY_URL_EXPIRES_SECONDS="604800")
    assert get_settings().assembly_url_expires_seconds == 604800


def test_a_dedicated_signer_signs_the_links(client, service, env):
    """The role's session credentials would cut a 24 h link short; the signer's keys do not
    expire with a session, and its URL carries no session token."""
    env(PRESIGN_ACCESS_KEY_ID=SIGNER_KEY_ID, PRESIGN_SECRET_ACCESS_KEY="signer-secret")
    task = stored_task(service, Status.COMPLETED, **with_objects())
    url = client.http.get(f"/task/{task.id}", headers=auth()).json_body["TargetObjectURL"]
    signed = query(url)
    assert signed["X-Amz-Credential"].startswith(f"{SIGNER_KEY_ID}/")
    assert "X-Amz-Security-Token" not in signed
    assert signed["X-Amz-Expires"] == "86400"


def test_without_a_signer_the_role_signs(client, service):
    task = stored_task(service, Status.COMPLETED, **with_objects())
    url = client.http.get(f"/task/{task.id}", headers=auth()).json_body["TargetObjectURL"]
    assert not query(url)["X-Amz-Credential"].startswith(SIGNER_KEY_ID)


def _parse(stamp: str):
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
