"""Deployment configuration (YAML), with environment overrides and precise errors.

Every key is documented in ``config.example.yaml``. Only ``telegram.token``
and ``telegram.staff_chat_id`` are needed to run in Telegram; everything else
has a default. Relative paths resolve against the config file's folder.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from bot.core.hours import HoursError, StaffHours
from bot.core.knowledge import ClinicFacts

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config.yaml"
TELEGRAM_API = "https://api.telegram.org/bot"
_LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}$")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_RETENTION_DAYS = 365


class ConfigError(Exception):
    """The configuration cannot be used: names the file, the key and what is wrong."""

    def __init__(self, path: Path | None, key: str, message: str) -> None:
        self.path, self.key, self.message = path, key, message
        where = f"{path}: " if path else ""
        super().__init__(f"{where}{key}: {message}")


@dataclass(frozen=True)
class WebhookConfig:
    listen: str = "0.0.0.0"
    port: int = 8443
    path: str = "telegram"
    url: str = ""
    secret_token: str = ""


@dataclass(frozen=True)
class RateLimitConfig:
    overall_per_second: float = 30.0  # Telegram's limit for one bot
    group_per_minute: float = 20.0  # Telegram's limit per group chat
    chat_per_second: float = 1.0  # Telegram's pace into one private chat (after a burst of a few)


@dataclass(frozen=True)
class TelegramConfig:
    token: str = ""
    api_base_url: str = TELEGRAM_API
    api_file_url: str = ""
    staff_chat_id: int = 0
    mode: Literal["polling", "webhook"] = "polling"
    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)


@dataclass(frozen=True)
class Config:
    telegram: TelegramConfig = field(default_factory=TelegramConfig)
    storage_path: Path = PROJECT_ROOT / "bot.sqlite3"
    faq_path: Path = PROJECT_ROOT / "faq"
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"  # json: one object per line, for log collectors
    phone_region: str = "KR"
    transcript_lines: int = 12  # recent conversation lines shown on a staff card
    # Who may act as staff (reply to patients, /close...): these Telegram user ids, or,
    # when empty, the staff group's administrators.
    staff_user_ids: frozenset[int] = frozenset()
    # After a patient's /forget: False deletes their staff topic too; True keeps it (closed)
    # as the clinic's record, and the patient is told so.
    staff_keep_records: bool = False
    # When coordinators answer (staff.hours; None: not said), in the clinic's time zone.
    staff_hours: StaffHours | None = None
    timezone: str = "Asia/Seoul"
    # Personal data older than this many days is deleted while the bot runs (see
    # Store.delete_older_than); 0 keeps it. A year: long enough for a patient to come back
    # for a consultation and find their history, short enough not to keep strangers' data.
    retention_days: int = DEFAULT_RETENTION_DAYS
    clinic: ClinicFacts = field(default_factory=ClinicFacts)  # the operator's own facts (address, phone...)
    # GET /healthz on this port while polling (0: none; in webhook mode the webhook's port serves it).
    health_port: int = 0
    health_listen: str = "127.0.0.1"
    source: Path | None = None

    @property
    def has_token(self) -> bool:
        return bool(self.telegram.token)


def derive_file_url(api_base_url: str) -> str:
    """Telegram serves files beside the API: ``…/bot`` becomes ``…/file/bot``."""
    base = api_base_url.rstrip("/")
    if base.endswith("/bot"):
        return base[: -len("/bot")] + "/file/bot"
    return base + "/file"


def load_config(path: Path | str | None = None, environ: dict[str, str] | None = None, *, require_staff: bool = True) -> Config:
    """Read the config file (optional when ``path`` is None) and apply environment overrides.
    ``require_staff=False``: a token without the staff group is accepted (for `whoami`, which finds it)."""
    env = os.environ if environ is None else environ
    source: Path | None = None
    data: dict[str, Any] = {}
    if path is None and (named := (env.get("BOT_CONFIG") or "").strip()):
        path = named  # a container or a unit file names its config this way
    if path is not None or DEFAULT_CONFIG.exists():
        source = Path(path) if path is not None else DEFAULT_CONFIG
        try:
            loaded = yaml.safe_load(source.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(source, "(file)", "not found; copy config.example.yaml and edit it") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f"line {mark.line + 1}: " if mark else ""
            raise ConfigError(source, "(yaml)", f"{line}not valid YAML: {getattr(exc, 'problem', exc)}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(source, "(top level)", "must be a mapping of sections (telegram, storage, faq, logging)")
        data = loaded or {}
    return _build(data, source, env, require_staff=require_staff)


class _Reader:
    def __init__(self, source: Path | None) -> None:
        self.source = source

    def section(self, data: dict[str, Any], key: str, allowed: set[str]) -> dict[str, Any]:
        value = data.get(key.rsplit(".", 1)[-1])
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(self.source, key, f"must be a mapping, found {value!r}")
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise ConfigError(self.source, f"{key}.{unknown[0]}", f"unknown key (expected one of: {', '.join(sorted(allowed))})")
        return value

    def text(self, data: dict[str, Any], key: str, default: str) -> str:
        value = data.get(key.rsplit(".", 1)[-1], default)
        if value is None:
            return default
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise ConfigError(self.source, key, f"must be text, found {value!r}")
        return str(value).strip()

    def per_language(self, data: dict[str, Any], key: str) -> dict[str, str]:
        """A text, or texts by language code ({en: ..., ko: ...}); "*" holds the one for every language.

        Only quoted-or-plain text is taken: YAML reads 0212345670 as an octal number and
        10:30 as 630, and a patient would be told the wrong number or time.
        """
        value = data.get(key.rsplit(".", 1)[-1])
        if value is None or value == "":
            return {}
        if isinstance(value, str):
            return {"*": value.strip()}
        if isinstance(value, dict):
            texts: dict[str, str] = {}
            for code, text in value.items():
                if not isinstance(code, str) or not _LANGUAGE_CODE.match(code):
                    raise ConfigError(self.source, f"{key}.{code}", "is not a language code (two or three lowercase letters, like en or ko)")
                if not isinstance(text, str):
                    raise ConfigError(self.source, f"{key}.{code}", f"must be text; put it in quotes ({text!r} is how YAML read it)")
                if text.strip():
                    texts[code] = text.strip()
            return texts
        raise ConfigError(
            self.source, key, f"must be text in quotes, or texts by language code like {{en: ..., ko: ...}}; YAML read {value!r}"
        )

    def number(self, data: dict[str, Any], key: str, default: float, *, integer: bool = False, minimum: float = 0) -> Any:
        value = data.get(key.rsplit(".", 1)[-1], default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not float(value).is_integer()):
            kind = "a whole number" if integer else "a number"
            raise ConfigError(self.source, key, f"must be {kind}, found {value!r}")
        if value < minimum:
            raise ConfigError(self.source, key, f"must be at least {minimum}, found {value!r}")
        return int(value) if integer else float(value)

    def path(self, data: dict[str, Any], key: str, default: Path) -> Path:
        value = self.text(data, key, "")
        if not value:
            return default
        candidate = Path(value).expanduser()
        if not candidate.is_absolute():
            candidate = (self.source.parent if self.source else Path.cwd()) / candidate
        return candidate


def _build(data: dict[str, Any], source: Path | None, env: dict[str, str] | os._Environ[str], *, require_staff: bool = True) -> Config:
    r = _Reader(source)
    unknown = sorted(set(data) - {"telegram", "storage", "faq", "logging", "booking", "staff", "clinic", "health"})
    if unknown:
        raise ConfigError(source, unknown[0], "unknown section (expected telegram, storage, faq, logging, booking, staff, clinic, health)")
    health = r.section(data, "health", {"port", "listen"})
    tg = r.section(data, "telegram", {"token", "api_base_url", "api_file_url", "staff_chat_id", "mode", "webhook", "rate_limit"})
    token = (env.get("TELEGRAM_BOT_TOKEN") or "").strip() or r.text(tg, "telegram.token", "")
    if token and (":" not in token or any(ch.isspace() for ch in token)):
        raise ConfigError(source, "telegram.token", "does not look like a bot token (expected '<digits>:<letters>' from @BotFather)")
    base_url = r.text(tg, "telegram.api_base_url", TELEGRAM_API) or TELEGRAM_API
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(source, "telegram.api_base_url", f"must be an http(s) URL, found {base_url!r}")
    file_url = r.text(tg, "telegram.api_file_url", "") or derive_file_url(base_url)
    staff_raw = (env.get("TELEGRAM_STAFF_CHAT_ID") or "").strip() or tg.get("staff_chat_id", 0)
    if isinstance(staff_raw, str) and staff_raw.strip().lstrip("-").isdigit():
        staff_raw = int(staff_raw)
    if isinstance(staff_raw, bool) or not isinstance(staff_raw, int):
        raise ConfigError(source, "telegram.staff_chat_id", f"must be the numeric id of the staff supergroup (like -1001234567890), found {staff_raw!r}")
    if token and staff_raw >= 0 and require_staff:
        raise ConfigError(
            source, "telegram.staff_chat_id",
            "must be set to the staff supergroup's id (a negative number like -1001234567890); "
            "add the bot to the group, send /start there, and `python -m bot whoami` shows the id",
        )
    mode = r.text(tg, "telegram.mode", "polling").lower()
    if mode not in ("polling", "webhook"):
        raise ConfigError(source, "telegram.mode", f"must be 'polling' or 'webhook', found {mode!r}")
    wh = r.section(tg, "telegram.webhook", {"listen", "port", "path", "url", "secret_token"})
    webhook = WebhookConfig(
        listen=r.text(wh, "telegram.webhook.listen", "0.0.0.0"),
        port=r.number(wh, "telegram.webhook.port", 8443, integer=True, minimum=1),
        path=r.text(wh, "telegram.webhook.path", "telegram").strip("/"),
        url=r.text(wh, "telegram.webhook.url", ""),
        secret_token=r.text(wh, "telegram.webhook.secret_token", ""),
    )
    if mode == "webhook" and token:
        if not webhook.url.startswith("https://") and not webhook.url.startswith("http://127.0.0.1"):
            raise ConfigError(source, "telegram.webhook.url", "webhook mode needs the public https:// URL Telegram should call")
        if not webhook.secret_token or not all(ch.isalnum() or ch in "_-" for ch in webhook.secret_token) or len(webhook.secret_token) > 256:
            raise ConfigError(source, "telegram.webhook.secret_token", "webhook mode needs a secret of 1-256 characters A-Z, a-z, 0-9, _ or -")
    rl = r.section(tg, "telegram.rate_limit", {"overall_per_second", "group_per_minute", "chat_per_second"})
    rate = RateLimitConfig(
        overall_per_second=r.number(rl, "telegram.rate_limit.overall_per_second", 30.0),
        group_per_minute=r.number(rl, "telegram.rate_limit.group_per_minute", 20.0),
        chat_per_second=r.number(rl, "telegram.rate_limit.chat_per_second", 1.0),
    )
    storage = r.section(data, "storage", {"path", "retention_days"})
    faq = r.section(data, "faq", {"path"})
    logging_section = r.section(data, "logging", {"level", "format"})
    level = ((env.get("LOG_LEVEL") or "").strip() or r.text(logging_section, "logging.level", "INFO")).upper()
    log_format = ((env.get("LOG_FORMAT") or "").strip() or r.text(logging_section, "logging.format", "text")).lower()
    if log_format not in ("text", "json"):
        raise ConfigError(source, "logging.format", f"must be 'text' or 'json', found {log_format!r}")
    if level not in LOG_LEVELS:
        raise ConfigError(source, "logging.level", f"must be one of {', '.join(LOG_LEVELS)}, found {level!r}")
    booking = r.section(data, "booking", {"phone_region"})
    region = r.text(booking, "booking.phone_region", "KR").upper()
    if len(region) != 2 or not region.isalpha():
        raise ConfigError(source, "booking.phone_region", f"must be a two-letter country code such as KR, found {region!r}")
    staff = r.section(data, "staff", {"transcript_lines", "user_ids", "keep_records", "hours", "timezone", "reply_within_minutes"})
    timezone = r.text(staff, "staff.timezone", "Asia/Seoul") or "Asia/Seoul"
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(source, "staff.timezone", f"{timezone!r} is not a time zone such as Asia/Seoul") from None
    hours_entries = staff.get("hours") or {}
    if not isinstance(hours_entries, dict):
        raise ConfigError(source, "staff.hours", "must map days to hours, e.g. {mon-fri: \"09:00-18:00\", sat: \"10:00-14:00\"}")
    try:
        within = r.number(staff, "staff.reply_within_minutes", 30, integer=True, minimum=1)
        staff_hours = StaffHours.parse({str(k): str(v) for k, v in hours_entries.items()}, within) if hours_entries else None
    except HoursError as exc:
        raise ConfigError(source, "staff.hours", str(exc)) from None
    keep_records = staff.get("keep_records", False)
    if not isinstance(keep_records, bool):
        raise ConfigError(source, "staff.keep_records", f"must be true or false, found {keep_records!r}")
    staff_ids = staff.get("user_ids") or []
    if not isinstance(staff_ids, list) or any(isinstance(i, bool) or not isinstance(i, int) or i <= 0 for i in staff_ids):
        raise ConfigError(source, "staff.user_ids", f"must be a list of Telegram user ids (positive numbers), found {staff_ids!r}")
    clinic_section = r.section(data, "clinic", {*ClinicFacts.CONTACT_FIELDS, "emergency_number"})
    clinic = ClinicFacts(
        **{name: r.per_language(clinic_section, f"clinic.{name}") for name in ClinicFacts.CONTACT_FIELDS},
        emergency_number=r.text(clinic_section, "clinic.emergency_number", "119") or "119",
    )
    database = (env.get("BOT_DATABASE") or "").strip()
    return Config(
        telegram=TelegramConfig(
            token=token, api_base_url=base_url, api_file_url=file_url, staff_chat_id=staff_raw,
            mode=mode, webhook=webhook, rate_limit=rate,  # type: ignore[arg-type]
        ),
        storage_path=Path(database) if database else r.path(storage, "storage.path", PROJECT_ROOT / "bot.sqlite3"),
        faq_path=r.path(faq, "faq.path", PROJECT_ROOT / "faq"),
        log_level=level,
        log_format=log_format,  # type: ignore[arg-type]
        phone_region=region,
        transcript_lines=r.number(staff, "staff.transcript_lines", 12, integer=True, minimum=0),
        staff_user_ids=frozenset(staff_ids),
        staff_keep_records=keep_records,
        staff_hours=staff_hours,
        timezone=timezone,
        retention_days=r.number(storage, "storage.retention_days", DEFAULT_RETENTION_DAYS, integer=True, minimum=0),
        clinic=clinic,
        health_port=r.number(health, "health.port", 0, integer=True, minimum=0),
        health_listen=r.text(health, "health.listen", "127.0.0.1") or "127.0.0.1",
        source=source,
    )
