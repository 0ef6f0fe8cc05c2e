"""The webhooks file: a bad entry is a start-up error naming the destination and what is wrong."""

from __future__ import annotations

import base64
from pathlib import Path

import msgspec
import pytest

from recsvc.domain.webhooks import DETRACTOR, EVENT_TYPES, PUBLISHED, DetractorResponse, new_event
from recsvc.errors import ConfigError
from recsvc.service.settings import load_settings
from recsvc.service.webhooks.destinations import load_destinations
from recsvc.service.webhooks.status import event_body_type, schemas

SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()
ROTATED = "whsec_" + base64.b64encode(b"t" * 32).decode()


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "webhooks.toml"
    path.write_text(text)
    return path


def test_a_destination_with_defaults_and_a_rotating_secret(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        '[destinations.crm]\nurl = "https://crm.example.com/hook"\nsecret_env = "CRM_SECRET"\n'
        '[destinations.alerts]\nurl = "http://127.0.0.1:9000/"\nsecret_env = "ALERTS"\n'
        'events = ["nps.response.detractor"]\nsegments = ["detractor_recovery"]\nbatch_size = 50\n',
    )
    crm, alerts = load_destinations(path, {"CRM_SECRET": f"{SECRET} {ROTATED}", "ALERTS": SECRET})
    assert crm.events == frozenset(EVENT_TYPES) and len(crm.keys) == 2 and crm.batch_size == 500
    assert alerts.events == {DETRACTOR} and alerts.wants_segment("detractor_recovery")
    assert not alerts.wants_segment("promoters") and crm.wants_segment("promoters")


@pytest.mark.parametrize(
    ("entry", "env", "message"),
    [
        ('url = "ftp://x"\nsecret_env = "S"', {"S": SECRET}, "'crm': url must be an http"),
        ('url = "https://x"\nsecret_env = "MISSING"', {}, "'crm': the variable MISSING"),
        ('url = "https://x"\nsecret_env = "S"', {"S": "plain"}, "'crm': secret 1 in S"),
        (
            'url = "https://x"\nsecret_env = "S"\nevents = ["order.created"]',
            {"S": SECRET},
            "'crm': events: order.created",
        ),
        ('url = "https://x"\nsecret_env = "S"\nbatch_size = 0', {"S": SECRET}, "'crm'.*batch_size"),
        ('url = "https://x"\nsecret_env = "S"\ncolour = 1', {"S": SECRET}, "'crm'.*colour"),
    ],
)
def test_a_bad_destination_names_itself(
    tmp_path: Path, entry: str, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_destinations(_file(tmp_path, f"[destinations.crm]\n{entry}\n"), env)
    assert "plain" not in str(info.value)  # never quotes a secret


def test_a_bad_name_or_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'a b': a name is"):
        load_destinations(
            _file(tmp_path, '[destinations."a b"]\nurl = "https://x"\nsecret_env = "S"\n'),
            {"S": SECRET},
        )
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_destinations(_file(tmp_path, "[destinations\n"), {})
    with pytest.raises(ConfigError, match="cannot read it"):
        load_destinations(tmp_path / "missing.toml", {})
    assert load_destinations(None) == []


def test_the_documented_schemas_are_the_codes() -> None:
    documented = Path(__file__).parents[3] / "docs" / "webhook-events.schema.json"
    assert documented.read_text() == schemas(), "run: recsvc webhooks schema > " + str(documented)


def test_a_body_we_send_decodes_as_its_documented_type() -> None:
    event = new_event(
        DETRACTOR,
        DetractorResponse(
            response_id="R1", customer_id="C1", score=3, responded_at="2026-12-01T10:00:00Z"
        ),
        id="msg_1",
        created_at="2026-12-01T10:00:01Z",
        customers=["C1"],
    )
    decoded = msgspec.json.decode(event.body, type=event_body_type(DETRACTOR))
    assert decoded.data.customer_id == "C1"
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(event.body, type=event_body_type(PUBLISHED))


def test_the_old_detractor_url_setting_stops_the_start_with_how_to_migrate() -> None:
    with pytest.raises(ConfigError, match=r"RECSVC_WEBHOOKS_FILE.*Connect your CRM"):
        load_settings({"RECSVC_DETRACTOR_WEBHOOK_URL": "http://example.com/hook"})
