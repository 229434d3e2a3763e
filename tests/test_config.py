"""Configuration: defaults, environment overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, derive_file_url, load_config
from tests.conftest import ROOT

TOKEN = "123456:ABC-def"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_the_example_config_is_valid_and_has_no_token() -> None:
    config = load_config(ROOT / "config.example.yaml", environ={})
    assert not config.has_token
    assert config.telegram.api_file_url == "https://api.telegram.org/file/bot"


def test_only_the_documented_keys_are_enough_and_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
telegram:
  token: "{TOKEN}"
  api_base_url: http://127.0.0.1:9999/bot
  staff_chat_id: -1001
  mode: polling
  rate_limit: {{overall_per_second: 0, group_per_minute: 0, chat_per_second: 0}}
storage: {{path: data/bot.db}}
faq: {{path: ../faq}}
logging: {{level: debug}}
""",
    )
    config = load_config(path, environ={})
    assert config.telegram.token == TOKEN
    assert config.telegram.api_file_url == "http://127.0.0.1:9999/file/bot"
    assert config.storage_path == tmp_path / "data" / "bot.db"
    assert config.faq_path == tmp_path / ".." / "faq"
    assert config.log_level == "DEBUG"
    assert config.telegram.rate_limit.overall_per_second == 0


def test_environment_overrides_token_and_log_level(tmp_path: Path) -> None:
    path = write(tmp_path, "telegram: {token: '1:file', staff_chat_id: -5}\nlogging: {level: INFO}\n")
    config = load_config(path, environ={"TELEGRAM_BOT_TOKEN": TOKEN, "LOG_LEVEL": "warning"})
    assert config.telegram.token == TOKEN and config.log_level == "WARNING"
    assert load_config(path, environ={"TELEGRAM_BOT_TOKEN": "  "}).telegram.token == "1:file"


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("telegram: {token: '1:a', staff_chat_id: 0}", "telegram.staff_chat_id", "staff supergroup"),
        ("telegram: {token: '1:a', staff_chat_id: 'abc'}", "telegram.staff_chat_id", "numeric id"),
        ("telegram: {token: 'not a token'}", "telegram.token", "does not look like"),
        ("telegram: {mode: push}", "telegram.mode", "'polling' or 'webhook'"),
        ("telegram: {token: '1:a', staff_chat_id: -1, mode: webhook, webhook: {url: 'https://x.example'}}", "telegram.webhook.secret_token", "secret"),
        ("telegram: {rate_limit: {overall_per_second: fast}}", "telegram.rate_limit.overall_per_second", "must be a number"),
        ("telegram: {webhook: {port: 0}}", "telegram.webhook.port", "at least 1"),
        ("telegram: {tokn: x}", "telegram.tokn", "unknown key"),
        ("logging: {level: LOUD}", "logging.level", "must be one of"),
        ("storage: [a, b]", "storage", "must be a mapping"),
        ("telegram: {api_base_url: 'ftp://x'}", "telegram.api_base_url", "http(s) URL"),
        ("telegram: [", "(yaml)", "not valid YAML"),
        ("clinic: {phone: [1, 2]}", "clinic.phone", "texts by language code"),
        ("clinic: {phone: 0212345670}", "clinic.phone", "text in quotes"),  # YAML's octal: never shown as a number
        ("clinic: {hours: {en: 10:30}}", "clinic.hours.en", "put it in quotes"),
        ("clinic: {address: {Korean: x}}", "clinic.address.Korean", "not a language code"),
        ("clinic: {fax: '02'}", "clinic.fax", "unknown key"),
        ("staff: {user_ids: '@mina'}", "staff.user_ids", "list of Telegram user ids"),
        ("staff: {user_ids: [123, mina]}", "staff.user_ids", "list of Telegram user ids"),
        ("staff: {keep_records: sometimes}", "staff.keep_records", "true or false"),
        ("staff: {timezone: Seoul}", "staff.timezone", "not a time zone"),
        ("staff: {hours: {weekdays: '09:00-18:00'}}", "staff.hours", "not a day or a range of days"),
        ("staff: {hours: {mon-fri: '9 to 6'}}", "staff.hours", "not a span of time"),
    ],
)
def test_errors_name_the_file_and_key(tmp_path: Path, text: str, key: str, words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_config(path, environ={})
    assert raised.value.key == key
    assert str(raised.value).startswith(f"{path}: {key}: ")
    assert words in raised.value.message


def test_staff_hours_are_read_in_the_clinics_time_zone(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "staff: {timezone: Europe/London, hours: {mon-fri: '09:00-17:30'}, reply_within_minutes: 15}"), environ={})
    assert config.timezone == "Europe/London"
    assert config.staff_hours is not None and config.staff_hours.reply_within_minutes == 15
    assert config.staff_hours.spans[0] == ((540, 1050),) and config.staff_hours.spans[5] == ()


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml", environ={})


def test_file_url_derivation() -> None:
    assert derive_file_url("http://localhost:8081/bot") == "http://localhost:8081/file/bot"
    assert derive_file_url("http://localhost:8081/bot/") == "http://localhost:8081/file/bot"


def test_the_clinic_facts_are_read_per_language(tmp_path: Path) -> None:
    path = write(tmp_path, "clinic:\n  phone: '+82 2-000-0000'\n  address: {en: 12 Gangnam-daero, ko: 강남대로 12}\n")
    clinic = load_config(path, environ={}).clinic
    assert clinic.value("phone", "ko") == clinic.value("phone", "en") == "+82 2-000-0000"
    assert (clinic.value("address", "en"), clinic.value("address", "ko")) == ("12 Gangnam-daero", "강남대로 12")
    assert clinic.value("hours", "en") == "" and clinic.emergency_number == "119"


def test_a_clinic_fact_in_a_language_the_faq_lacks_is_named(tmp_path: Path) -> None:
    from bot.app import build_dialogue

    path = write(tmp_path, "clinic:\n  address: {en: 12 Gangnam-daero, kr: 강남대로 12}\n")
    with pytest.raises(ConfigError) as raised:
        build_dialogue(load_config(path, environ={}))
    assert raised.value.key == "clinic.address.kr" and "en, ko" in raised.value.message


def test_a_container_configures_the_bot_by_environment(tmp_path: Path) -> None:
    # docker compose passes secrets and the volume's paths as variables; the file needs neither.
    path = tmp_path / "config.yaml"
    path.write_text("clinic: {phone: '+82 2-000-0000'}\n")
    config = load_config(
        environ={
            "BOT_CONFIG": str(path), "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_STAFF_CHAT_ID": "-1001234567890",
            "BOT_DATABASE": "/data/bot.sqlite3",
        }
    )
    assert config.source == path and config.clinic.phone == {"*": "+82 2-000-0000"}
    assert config.telegram.staff_chat_id == -1001234567890
    assert config.storage_path == Path("/data/bot.sqlite3")
    with pytest.raises(ConfigError, match="staff_chat_id"):
        load_config(environ={"BOT_CONFIG": str(path), "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_STAFF_CHAT_ID": "the staff group"})


def test_a_faq_path_that_does_not_exist_names_where_it_was_looked_for(tmp_path: Path) -> None:
    from bot.app import build_dialogue

    path = write(tmp_path, "faq: {path: faqs}\n")
    with pytest.raises(ConfigError, match=r"faq\.path: .*faqs does not exist \(a relative path is resolved against the config file's folder"):
        build_dialogue(load_config(path, environ={}))
