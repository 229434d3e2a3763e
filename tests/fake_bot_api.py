"""A fake Telegram Bot API server for tests, driven by the real python-telegram-bot stack.

The server speaks the Bot API over HTTP on 127.0.0.1, so the real ``telegram.Bot`` /
``Application`` talk to it exactly as they talk to Telegram::

    async with FakeBotApi() as api:
        app = (
            ApplicationBuilder()
            .token(api.token)
            .base_url(api.base_url)
            .base_file_url(api.base_file_url)
            .build()
        )
        ...
        api.push_update(api.private_text(42, "/start"))
        reply = await api.wait_for_message(42)

Like Telegram, it refuses what Telegram refuses (too long texts, broken HTML,
oversized callback data, unknown chats and topics, blocked users, ...) with Telegram's own
error descriptions, so those bugs show up in tests instead of production.

Every call is logged (``api.calls``); tests wait for calls or sent messages with
``wait_for`` / ``wait_for_message`` (condition based, no polling). Faults and latency can
be injected per method with ``fail_next`` / ``delay``.
"""

from __future__ import annotations

import asyncio
import random
import copy
import json
import re
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import aiohttp
from aiohttp import web

__all__ = [
    "Call",
    "TelegramLimits",
    "EntityParseError",
    "FakeBotApi",
    "UploadedFile",
    "parse_html",
]

JSONDict = dict[str, Any]

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64
DEFAULT_STAFF_USER_ID = 5550001
GENERAL_TOPIC_ID = 1
FORUM_TOPIC_COLORS = (7322096, 16766590, 13338331, 9367192, 16749490, 16478047)

#: Update types Telegram leaves out when allowed_updates is empty or was never set.
DEFAULT_EXCLUDED_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)

INLINE_BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)

#: Message fields that carry content (copied by copyMessage / forwardMessage).
CONTENT_FIELDS = (
    "text",
    "entities",
    "animation",
    "audio",
    "document",
    "photo",
    "sticker",
    "video",
    "video_note",
    "voice",
    "caption",
    "caption_entities",
    "contact",
    "dice",
    "location",
    "venue",
    "poll",
)

# Form fields whose values are JSON-serialised objects/arrays (PTB: RequestParameter.json_value).
_JSON_FIELDS = frozenset(
    {
        "reply_markup",
        "allowed_updates",
        "media",
        "entities",
        "caption_entities",
        "link_preview_options",
        "reply_parameters",
        "commands",
        "scope",
        "results",
        "options",
        "permissions",
        "input_message_content",
        "menu_button",
        "rights",
        "reaction",
        "message_ids",
        "explanation_entities",
        "question_entities",
        "prices",
    }
)
_INT_FIELDS = frozenset(
    {
        "chat_id",
        "from_chat_id",
        "message_id",
        "message_thread_id",
        "offset",
        "limit",
        "timeout",
        "user_id",
        "icon_color",
        "reply_to_message_id",
        "max_connections",
        "cache_time",
        "duration",
        "width",
        "height",
        "until_date",
        "video_start_timestamp",
        "direct_messages_topic_id",
    }
)
_BOOL_FIELDS = frozenset(
    {
        "disable_notification",
        "protect_content",
        "drop_pending_updates",
        "show_alert",
        "allow_sending_without_reply",
        "disable_web_page_preview",
        "has_spoiler",
        "show_caption_above_media",
        "allow_paid_broadcast",
        "disable_content_type_detection",
        "supports_streaming",
        "remove_caption",
        "is_big",
    }
)

_MEDIA_FOLDERS = {
    "photo": ("photos", ".jpg", "image/jpeg"),
    "document": ("documents", "", "application/octet-stream"),
    "voice": ("voice", ".oga", "audio/ogg"),
    "audio": ("music", ".mp3", "audio/mpeg"),
    "video": ("videos", ".mp4", "video/mp4"),
    "animation": ("animations", ".mp4", "video/mp4"),
    "sticker": ("stickers", ".webp", "image/webp"),
    "video_note": ("video_notes", ".mp4", "video/mp4"),
}


# --------------------------------------------------------------------------------------
# Public records
# --------------------------------------------------------------------------------------


@dataclass
class Call:
    """One request the server received.

    ``params`` are decoded (ints, bools and JSON fields typed; uploads as UploadedFile).
    ``status``/``response`` are filled in once the server has answered (None while the
    call is still in flight, e.g. a long poll or a delayed method).
    """

    method: str
    params: JSONDict
    time: float
    status: int | None = None
    response: JSONDict | None = None

    @property
    def ok(self) -> bool:
        """True when the server answered 200 ok."""
        return self.status == 200

    @property
    def result(self) -> Any:
        """The ``result`` of a successful call (None otherwise)."""
        return (self.response or {}).get("result")

    @property
    def description(self) -> str | None:
        """Telegram's error description of a refused call."""
        return (self.response or {}).get("description")


@dataclass
class UploadedFile:
    """A file part of a multipart/form-data request."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes = field(repr=False)

    def __repr__(self) -> str:
        return f"UploadedFile({self.name!r}, {self.filename!r}, {len(self.data)} bytes)"


class ApiError(Exception):
    """A refusal, rendered as Telegram's ``{"ok": false, ...}`` body."""

    def __init__(self, status: int, description: str, parameters: JSONDict | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def body(self) -> JSONDict:
        """The JSON body Telegram would send."""
        out: JSONDict = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            out["parameters"] = self.parameters
        return out


def _bad_request(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


@dataclass
class _Fault:
    status: int
    description: str
    retry_after: int | None
    remaining: int


@dataclass
class _StoredFile:
    file_id: str
    file_unique_id: str
    kind: str
    data: bytes
    file_path: str
    file_name: str | None = None
    mime_type: str | None = None


# --------------------------------------------------------------------------------------
# Text formatting (HTML), modelled on TDLib's parser
# --------------------------------------------------------------------------------------


class EntityParseError(ValueError):
    """Markup Telegram cannot parse; the message follows TDLib's wording."""


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (the unit of entity offsets)."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(src: str, index: int) -> int:
    return len(src[:index].encode("utf-8"))


class _TextBuilder:
    """Accumulates parsed text and tracks its length in UTF-16 units."""

    __slots__ = ("parts", "pos")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0

    def add(self, piece: str) -> None:
        if piece:
            self.parts.append(piece)
            self.pos += utf16_len(piece)

    @property
    def mark(self) -> int:
        return len(self.parts)

    def text_from(self, mark: int) -> str:
        return "".join(self.parts[mark:])

    def text(self) -> str:
        return "".join(self.parts)


_HTML_SIMPLE_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
}
_HTML_TAGS = frozenset(
    {*_HTML_SIMPLE_TAGS, "a", "code", "pre", "blockquote", "tg-emoji", "tg-time"}
)
_HTML_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_ENTITY_RE = re.compile(r"&(?:#([0-9]{1,10})|#[xX]([0-9a-fA-F]{1,8})|([a-zA-Z]+));?")
_DATE_TIME_FORMAT_RE = re.compile(r"r|w?[dD]?[tT]?")


@dataclass
class _OpenTag:
    name: str
    attrs: dict[str, str]
    pos: int
    mark: int
    pre_code: JSONDict | None = None


def _decode_html_entity(src: str, i: int) -> tuple[str, int]:
    """Decode the character reference at ``src[i] == '&'``; unknown ones stay literal."""
    match = _HTML_ENTITY_RE.match(src, i)
    if not match:
        return "&", i + 1
    decimal, hexadecimal, name = match.groups()
    if name is not None:
        if name in _HTML_NAMED_ENTITIES:
            return _HTML_NAMED_ENTITIES[name], match.end()
        return "&", i + 1
    code = int(decimal) if decimal is not None else int(hexadecimal, 16)
    if code == 0 or code > 0x10FFFF:
        return "&", i + 1
    if 0xD800 <= code <= 0xDFFF:
        raise EntityParseError(
            "Text contains invalid Unicode characters after decoding HTML entities, "
            "check for unmatched surrogate code units"
        )
    return chr(code), match.end()


def _parse_html_attributes(src: str, i: int, tag: str, begin: int) -> tuple[dict[str, str], int]:
    """Parse attributes after a start tag name; returns them and the index after '>'."""
    attrs: dict[str, str] = {}
    n = len(src)
    while True:
        while i < n and src[i].isspace():
            i += 1
        if i >= n:
            raise EntityParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')
        if src[i] == ">":
            return attrs, i + 1
        start = i
        while i < n and not src[i].isspace() and src[i] not in "=>":
            i += 1
        name = src[start:i].lower()
        if not name:
            raise EntityParseError(f'Empty attribute name in the tag "{tag}" at byte offset {begin}')
        while i < n and src[i].isspace():
            i += 1
        if i >= n:
            raise EntityParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')
        if src[i] != "=":
            attrs.setdefault(name, "")
            continue
        i += 1
        while i < n and src[i].isspace():
            i += 1
        if i >= n:
            raise EntityParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')
        if src[i] in "\"'":
            quote = src[i]
            i += 1
            chars: list[str] = []
            while i < n and src[i] != quote:
                if src[i] == "&":
                    decoded, i = _decode_html_entity(src, i)
                    chars.append(decoded)
                else:
                    chars.append(src[i])
                    i += 1
            if i >= n:
                raise EntityParseError(f"Unclosed start tag at byte offset {begin}")
            i += 1
            value = "".join(chars)
        else:
            start = i
            while i < n and ((src[i].isascii() and src[i].isalnum()) or src[i] in ".-"):
                i += 1
            value = src[start:i].lower()
            if i >= n or (not src[i].isspace() and src[i] != ">"):
                raise EntityParseError(
                    f"Unexpected end of name token at byte offset {_byte_offset(src, start)}"
                )
        attrs.setdefault(name, value)


def _normalize_url(url: str) -> str | None:
    """Telegram-style URL normalisation for text links; None when it is not a URL."""
    url = url.strip()
    if not url or any(ch.isspace() for ch in url):
        return None
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", url):
        if re.match(r"^https?://[^/?#]+$", url, re.IGNORECASE):
            return url + "/"
        return url
    if re.match(r"^[\w-]+(\.[\w-]+)*\.[a-zA-Z]{2,}([/?#:].*)?$", url):
        host_only = not re.search(r"[/?#]", url)
        return "http://" + url + ("/" if host_only else "")
    return None


def _link_entity(url: str, offset: int, length: int) -> JSONDict | None:
    user = re.fullmatch(r"tg://user\?id=(\d+)", url.strip())
    if user:
        return {
            "type": "text_mention",
            "offset": offset,
            "length": length,
            "user": {"id": int(user.group(1)), "is_bot": False, "first_name": ""},
        }
    normalized = _normalize_url(url)
    if normalized is None:
        return None
    return {"type": "text_link", "offset": offset, "length": length, "url": normalized}


def _close_html_tag(
    tag: _OpenTag, out: _TextBuilder, entities: list[JSONDict], stack: list[_OpenTag]
) -> None:
    offset, length = tag.pos, out.pos - tag.pos
    name = tag.name
    if name in _HTML_SIMPLE_TAGS:
        if length > 0:
            entities.append({"type": _HTML_SIMPLE_TAGS[name], "offset": offset, "length": length})
    elif name == "a":
        if length > 0:
            entity = _link_entity(tag.attrs.get("href") or out.text_from(tag.mark), offset, length)
            if entity:
                entities.append(entity)
    elif name == "code":
        language = tag.attrs.get("class", "")
        parent = stack[-1] if stack else None
        if (
            parent is not None
            and parent.name == "pre"
            and language.startswith("language-")
            and len(language) > len("language-")
            and tag.pos == parent.pos
        ):
            parent.pre_code = {"offset": offset, "length": length, "language": language[9:]}
        elif length > 0:
            entities.append({"type": "code", "offset": offset, "length": length})
    elif name == "pre":
        code = tag.pre_code
        if length > 0:
            pre: JSONDict = {"type": "pre", "offset": offset, "length": length}
            if code and code["offset"] + code["length"] == out.pos:
                pre["language"] = code["language"]
                code = None
            entities.append(pre)
        if code and code["length"] > 0:
            entities.append({"type": "code", "offset": code["offset"], "length": code["length"]})
    elif name == "blockquote":
        kind = "expandable_blockquote" if "expandable" in tag.attrs else "blockquote"
        if length > 0:
            entities.append({"type": kind, "offset": offset, "length": length})
    elif name == "tg-emoji":
        emoji_id = tag.attrs.get("emoji-id", "")
        if not emoji_id.isdigit():
            raise EntityParseError("Custom emoji entity must contain a valid custom emoji identifier")
        if length > 0:
            entities.append(
                {"type": "custom_emoji", "offset": offset, "length": length, "custom_emoji_id": emoji_id}
            )
    elif name == "tg-time":
        unix, fmt = tag.attrs.get("unix", ""), tag.attrs.get("format", "")
        if not unix.isdigit():
            raise EntityParseError("Date-time entity must contain a valid unix time")
        if not _DATE_TIME_FORMAT_RE.fullmatch(fmt):
            raise EntityParseError("Invalid date format used")
        if length > 0:
            entity = {"type": "date_time", "offset": offset, "length": length, "unix_time": int(unix)}
            if fmt:
                entity["date_time_format"] = fmt
            entities.append(entity)


def _sorted_entities(entities: list[JSONDict]) -> list[JSONDict]:
    return sorted(entities, key=lambda e: (e["offset"], -e["length"]))


def parse_html(src: str) -> tuple[str, list[JSONDict]]:
    """Parse Telegram HTML into (text, entities); raises EntityParseError like TDLib."""
    out = _TextBuilder()
    stack: list[_OpenTag] = []
    entities: list[JSONDict] = []
    n, i = len(src), 0
    while i < n:
        ch = src[i]
        if ch == "&":
            decoded, i = _decode_html_entity(src, i)
            out.add(decoded)
            continue
        if ch != "<":
            out.add(ch)
            i += 1
            continue
        begin = _byte_offset(src, i)
        i += 1
        if i < n and src[i] == "/":
            if not stack:
                raise EntityParseError(f"Unexpected end tag at byte offset {begin}")
            j = i + 1
            while j < n and not src[j].isspace() and src[j] != ">":
                j += 1
            end_name = src[i + 1 : j].lower()
            while j < n and src[j].isspace():
                j += 1
            if j >= n or src[j] != ">":
                raise EntityParseError(f"Unclosed end tag at byte offset {begin}")
            tag = stack.pop()
            if end_name and end_name != tag.name:
                raise EntityParseError(
                    f'Unmatched end tag at byte offset {begin}, expected "</{tag.name}>", '
                    f'found "</{end_name}>"'
                )
            _close_html_tag(tag, out, entities, stack)
            i = j + 1
            continue
        j = i
        while j < n and not src[j].isspace() and src[j] != ">":
            j += 1
        if j >= n:
            raise EntityParseError(f"Unclosed start tag at byte offset {begin}")
        name = src[i:j].lower()
        if name not in _HTML_TAGS:
            raise EntityParseError(f'Unsupported start tag "{name}" at byte offset {begin}')
        attrs, i = _parse_html_attributes(src, j, name, begin)
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise EntityParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {begin}')
        stack.append(_OpenTag(name, attrs, out.pos, out.mark))
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    return out.text(), _sorted_entities(entities)


_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MDV2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
}


def _trim(text: str, entities: list[JSONDict]) -> tuple[str, list[JSONDict]]:
    """Strip surrounding whitespace as Telegram does, keeping entity offsets consistent."""
    left = text.lstrip()
    lead = utf16_len(text[: len(text) - len(left)])
    result = left.rstrip()
    total = utf16_len(result)
    trimmed: list[JSONDict] = []
    for entity in entities:
        start = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] - lead + entity["length"], total)
        if end > start:
            trimmed.append({**entity, "offset": start, "length": end - start})
    return result, trimmed


def format_text(
    raw: Any, parse_mode: Any, explicit_entities: Any = None
) -> tuple[str, list[JSONDict]]:
    """Apply ``parse_mode`` (or explicit entities) and trim; raises ApiError on bad markup."""
    text = raw if isinstance(raw, str) else str(raw)
    if isinstance(explicit_entities, list) and explicit_entities:
        return _trim(text, [dict(e) for e in explicit_entities])
    mode = (parse_mode or "").lower() if isinstance(parse_mode, str) else ""
    # HTML only: the one mode the bot sends (Telegram's Markdown modes would need parsers of
    # their own, which no test needs).
    parsers: dict[str, Callable[[str], tuple[str, list[JSONDict]]]] = {"html": parse_html}
    if mode and mode not in parsers:
        raise _bad_request("unsupported parse_mode")
    if not mode:
        return _trim(text, [])
    try:
        parsed, entities = parsers[mode](text)
    except EntityParseError as exc:
        raise _bad_request(f"can't parse entities: {exc}") from None
    return _trim(parsed, entities)


_COMMAND_RE = re.compile(r"(?<![\w/])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?")


def command_entities(text: str) -> list[JSONDict]:
    """The bot_command entities Telegram attaches to an incoming text."""
    return [
        {"type": "bot_command", "offset": utf16_len(text[: m.start()]), "length": utf16_len(m.group())}
        for m in _COMMAND_RE.finditer(text)
    ]


# --------------------------------------------------------------------------------------
# Request decoding
# --------------------------------------------------------------------------------------


def _coerce_param(key: str, value: Any) -> Any:
    """Type one parameter the way Telegram reads it (form values are all strings)."""
    if isinstance(value, UploadedFile):
        return value
    if key in _JSON_FIELDS and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            if key == "reply_markup":
                raise _bad_request("can't parse reply keyboard markup JSON object") from None
            raise _bad_request(f"can't parse {key} JSON object") from None
    if key in _INT_FIELDS and isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    if key in _BOOL_FIELDS and isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    return value


async def decode_request(request: web.Request) -> JSONDict:
    """Decode query string plus a JSON, urlencoded or multipart body into typed params."""
    raw: JSONDict = dict(request.query)
    if request.can_read_body:
        content_type = request.content_type
        if content_type == "application/json":
            body = await request.read()
            if body.strip():
                try:
                    data = json.loads(body)
                except ValueError:
                    raise _bad_request("can't parse JSON encoded request") from None
                if not isinstance(data, dict):
                    raise _bad_request("JSON object expected")
                raw.update(data)
        elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    raw[key] = UploadedFile(key, value.filename, value.content_type, value.file.read())
                else:
                    raw[key] = value
    return {key: _coerce_param(key, value) for key, value in raw.items()}


def _as_int(value: Any, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return int(value)
    try:
        return int(float(str(value)))
    except ValueError:
        return default


def _free_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


# --------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------

Handler = Callable[[JSONDict], Awaitable[Any]]


# What an administrator of the staff group may do (getChatMember / chat_member updates).
ADMIN_RIGHTS: dict[str, bool] = {
    "can_be_edited": False,
    "is_anonymous": False,
    "can_manage_chat": True,
    "can_delete_messages": True,
    "can_manage_video_chats": True,
    "can_restrict_members": True,
    "can_promote_members": False,
    "can_change_info": True,
    "can_invite_users": True,
    "can_post_stories": False,
    "can_edit_stories": False,
    "can_delete_stories": False,
    "can_pin_messages": True,
    "can_manage_topics": True,
}

# Methods that put a message into a chat: what Telegram's flood limits count.
_LIMITED_METHODS = frozenset({
    "sendmessage", "copymessage", "forwardmessage", "sendphoto", "senddocument", "sendvoice", "sendsticker",
    "sendvideo", "sendaudio", "sendanimation", "sendvideonote", "sendmediagroup", "createforumtopic",
})


class TelegramLimits:
    """Telegram's flood limits, enforced the way Telegram answers them: 429 with ``retry_after``.

    At most ``overall_per_second`` messages in any second from the bot; into one private
    chat about one a second with a burst of ``chat_burst``; into one group at most
    ``group_per_minute`` in any 60 seconds. Refused requests do not count.
    """

    def __init__(self, overall_per_second: int = 30, chat_burst: int = 3, group_per_minute: int = 20) -> None:
        self.overall_per_second, self.chat_burst, self.group_per_minute = overall_per_second, chat_burst, group_per_minute
        self.refused: list[tuple[int, float]] = []  # (chat id, when): each 429 answered
        self._overall: deque[float] = deque()
        self._chats: dict[int, tuple[float, float]] = {}  # private chat -> (tokens, when counted)
        self._groups: dict[int, deque[float]] = {}

    def admit(self, chat_id: int, now: float) -> int | None:
        """None when this message may go now (and it is counted), else Telegram's retry_after."""
        while self._overall and now - self._overall[0] >= 1.0:
            self._overall.popleft()
        if len(self._overall) >= self.overall_per_second:
            return self._refuse(chat_id, now, 1.0 - (now - self._overall[0]))
        if chat_id < 0:
            sent = self._groups.setdefault(chat_id, deque())
            while sent and now - sent[0] >= 60.0:
                sent.popleft()
            if len(sent) >= self.group_per_minute:
                return self._refuse(chat_id, now, 60.0 - (now - sent[0]))
            sent.append(now)
        else:
            tokens, then = self._chats.get(chat_id, (float(self.chat_burst), now))
            tokens = min(float(self.chat_burst), tokens + (now - then))
            if tokens < 1.0:
                return self._refuse(chat_id, now, 1.0 - tokens)
            self._chats[chat_id] = (tokens - 1.0, now)
        self._overall.append(now)
        return None

    def _refuse(self, chat_id: int, now: float, wait: float) -> int:
        self.refused.append((chat_id, now))
        return max(1, int(wait + 0.999))


class FakeBotApi:
    """An in-process fake of the Telegram Bot API (see the module docstring)."""

    def __init__(
        self,
        token: str = "123456:TEST-token",
        *,
        bot_id: int | None = None,
        bot_username: str = "test_bot",
        bot_first_name: str = "Test Bot",
        staff_chat_id: int = -1001234567890,
        staff_chat_title: str = "Staff",
        staff_is_forum: bool = True,
        bot_status: str = "administrator",
        bot_can_manage_topics: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.token = token
        self.bot_user: JSONDict = {
            "id": bot_id if bot_id is not None else int(token.split(":", 1)[0]),
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
        }
        self.staff_chat_id = staff_chat_id
        #: The bot's status in the staff group: "administrator", "member" or "left".
        self.bot_status = bot_status
        #: Whether the bot (as administrator) may manage forum topics.
        self.bot_can_manage_topics = bot_can_manage_topics
        #: Chats the bot left (leaveChat).
        self.left_chats: set[int] = set()
        #: Users who are administrators of the staff group (the default staff member is).
        self.staff_admins: set[int] = {DEFAULT_STAFF_USER_ID}
        self._host, self._port = host, port

        self.calls: list[Call] = []
        #: Last allowed_updates sent with getUpdates/setWebhook (None: never sent).
        self.allowed_updates: list[str] | None = None
        #: Highest offset confirmed by getUpdates (0: nothing confirmed yet).
        self.confirmed_offset = 0
        #: The registered webhook (url, secret_token, ...) or None.
        self.webhook: JSONDict | None = None
        #: Every copyMessage: from_chat_id, message_id, chat_id, message_thread_id, new_message_id.
        self.copies: list[JSONDict] = []
        #: Every forwardMessage, in the same shape as ``copies``.
        self.forwards: list[JSONDict] = []
        #: Answered callback queries: id -> answerCallbackQuery params.
        self.answered_callbacks: dict[str, JSONDict] = {}

        self._updates: list[JSONDict] = []
        self._next_update_id = 1000
        self._chats: dict[int, JSONDict] = {}
        self._users: dict[int, JSONDict] = {}
        self._members: dict[int, set[int]] = {}
        self._blocked: set[int] = set()
        self._message_ids: dict[int, int] = {}
        self._messages: dict[tuple[int, int], JSONDict] = {}
        self._deleted: set[tuple[int, int]] = set()
        self._sent: dict[int, list[JSONDict]] = {}
        self._topics: dict[int, dict[int, JSONDict]] = {}
        self._callback_ids: set[str] = set()
        self._next_callback_id = 4_000_000_000_000_000_000
        self._files: dict[str, _StoredFile] = {}
        self._files_by_path: dict[str, _StoredFile] = {}
        self._file_counter = 0
        self._commands: dict[tuple[str, str], list[JSONDict]] = {}
        self._faults: dict[str, deque[_Fault]] = {}
        self._delays: dict[str, float] = {}
        #: Telegram's flood limits, when enforced (``enforce_limits``); None: unlimited.
        self.limits: TelegramLimits | None = None

        self._runner: web.AppRunner | None = None
        self._cond: asyncio.Condition | None = None
        self._updates_changed: asyncio.Event | None = None
        self._poll_generation = 0
        self._closing = False

        self._chats[staff_chat_id] = {"id": staff_chat_id, "title": staff_chat_title, "type": "supergroup"}
        self._members[staff_chat_id] = set()
        self._topics[staff_chat_id] = {}
        # Message 1 of a forum is the General topic's root: real messages start at 2.
        self._message_ids[staff_chat_id] = GENERAL_TOPIC_ID + 1
        self.staff_is_forum = staff_is_forum

        media = {
            "sendPhoto": "photo",
            "sendDocument": "document",
            "sendVoice": "voice",
            "sendSticker": "sticker",
            "sendVideo": "video",
            "sendAudio": "audio",
            "sendAnimation": "animation",
            "sendVideoNote": "video_note",
        }
        self._handlers: dict[str, Handler] = {
            "getMe": self._api_get_me,
            "getUpdates": self._api_get_updates,
            "setWebhook": self._api_set_webhook,
            "deleteWebhook": self._api_delete_webhook,
            "getWebhookInfo": self._api_get_webhook_info,
            "close": self._api_true,
            "logOut": self._api_true,
            "setMyCommands": self._api_set_my_commands,
            "getMyCommands": self._api_get_my_commands,
            "deleteMyCommands": self._api_delete_my_commands,
            "getChat": self._api_get_chat,
            "getChatMember": self._api_get_chat_member,
            "leaveChat": self._api_leave_chat,
            "getFile": self._api_get_file,
            "sendMessage": self._api_send_message,
            "sendMediaGroup": self._api_send_media_group,
            "copyMessage": self._api_copy_message,
            "forwardMessage": self._api_forward_message,
            "editMessageText": self._api_edit_message_text,
            "editMessageCaption": self._api_edit_message_caption,
            "editMessageReplyMarkup": self._api_edit_message_reply_markup,
            "deleteMessage": self._api_delete_message,
            "answerCallbackQuery": self._api_answer_callback_query,
            "sendChatAction": self._api_send_chat_action,
            "createForumTopic": self._api_create_forum_topic,
            "editForumTopic": self._api_edit_forum_topic,
            "closeForumTopic": partial(self._api_set_topic_closed, closed=True),
            "reopenForumTopic": partial(self._api_set_topic_closed, closed=False),
            "deleteForumTopic": self._api_delete_forum_topic,
            **{name: partial(self._api_send_media, kind=kind) for name, kind in media.items()},
        }
        self._canonical = {name.lower(): name for name in self._handlers}

    # ---------------------------------------------------------------- lifecycle

    @property
    def staff_is_forum(self) -> bool:
        """Whether the staff supergroup has topics enabled."""
        return bool(self._chats[self.staff_chat_id].get("is_forum"))

    @staff_is_forum.setter
    def staff_is_forum(self, value: bool) -> None:
        chat = self._chats[self.staff_chat_id]
        if value:
            chat["is_forum"] = True
        else:
            chat.pop("is_forum", None)

    @property
    def port(self) -> int:
        """The bound TCP port (after start())."""
        if self._runner is None:
            raise RuntimeError("FakeBotApi is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """Value for ApplicationBuilder().base_url(): PTB appends '<token>/<method>'."""
        return f"http://{self._host}:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        """Value for ApplicationBuilder().base_file_url()."""
        return f"http://{self._host}:{self.port}/file/bot"

    async def start(self) -> None:
        """Bind to a free port on 127.0.0.1 and start serving."""
        if self._runner is not None:
            return
        self._cond = asyncio.Condition()
        self._updates_changed = asyncio.Event()
        self._closing = False
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        sock = _free_socket(self._host, self._port)
        self._port = sock.getsockname()[1]
        await web.SockSite(runner, sock).start()
        self._runner = runner

    async def stop(self) -> None:
        """Stop serving; pending long polls return at once."""
        if self._runner is None:
            return
        self._closing = True
        if self._updates_changed is not None:
            self._updates_changed.set()
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def __aenter__(self) -> FakeBotApi:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ---------------------------------------------------------------- test controls

    def push_update(self, update: JSONDict, *, redeliver_as: int | None = None) -> int:
        """Queue an update for getUpdates; assigns and returns its update_id.

        ``redeliver_as`` queues it again under an update_id already used, as
        Telegram does when the bot never confirmed it.
        """
        stored = copy.deepcopy(update)
        stored.pop("update_id", None)
        if redeliver_as is not None:
            update_id = redeliver_as
        else:
            update_id = self._next_update_id
            self._next_update_id += 1
        stored = {"update_id": update_id, **stored}
        self._learn_from_update(stored)
        self._updates.append(stored)
        if self._updates_changed is not None:
            self._updates_changed.set()
        return update_id

    @property
    def pending_updates(self) -> list[JSONDict]:
        """Updates queued and not yet confirmed."""
        return copy.deepcopy(self._updates)

    def block(self, chat_id: int) -> None:
        """Simulate a user who blocked the bot: sends to them get 403."""
        self._blocked.add(chat_id)

    def unblock(self, chat_id: int) -> None:
        """Undo block()."""
        self._blocked.discard(chat_id)

    def fail_next(
        self,
        method: str,
        times: int = 1,
        status: int = 429,
        description: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` ("*": any method) fail with ``status``."""
        if status == 429 and retry_after is None:
            retry_after = 1
        if description is None:
            description = {
                429: f"Too Many Requests: retry after {retry_after}",
                500: "Internal Server Error",
                502: "Bad Gateway",
                503: "Service Unavailable",
            }.get(status, "Injected failure")
        self._faults.setdefault(self._method_key(method), deque()).append(
            _Fault(status, description, retry_after, times)
        )

    def fail_randomly(self, share: float, status: int = 502, *, seed: int = 5, methods: tuple[str, ...] = ()) -> None:
        """From now on fail about ``share`` of calls (of ``methods``, default all but getUpdates) with ``status``.

        Deterministic for a given seed; 0 turns it off.
        """
        self._random_faults = (share, status, random.Random(seed), {m.lower() for m in methods})

    def enforce_limits(self, limits: TelegramLimits | None = None) -> TelegramLimits:
        """Answer 429 with retry_after, as Telegram does, to sends over its flood limits."""
        self.limits = limits or TelegramLimits()
        return self.limits

    def delay(self, method: str, seconds: float) -> None:
        """Answer ``method`` ("*": every method) only after ``seconds``; 0 removes the delay."""
        key = self._method_key(method)
        if seconds > 0:
            self._delays[key] = seconds
        else:
            self._delays.pop(key, None)

    def add_group(self, chat_id: int, title: str = "Another group", *, is_forum: bool = False) -> JSONDict:
        """A supergroup other than the staff group that the bot is a member of."""
        chat = {"id": chat_id, "title": title, "type": "supergroup", "is_forum": is_forum}
        self._chats[chat_id] = chat
        return copy.deepcopy(chat)

    def add_private_chat(
        self,
        chat_id: int,
        first_name: str | None = None,
        last_name: str | None = None,
        username: str | None = None,
    ) -> JSONDict:
        """Register a user who has written to the bot; returns their User dict."""
        return self._register_user(chat_id, first_name, last_name, username, private=True)

    def add_file(
        self,
        content: bytes = b"",
        *,
        kind: str = "document",
        file_name: str | None = None,
        mime_type: str | None = None,
    ) -> str:
        """Store a file (as if a user uploaded it) and return its file_id."""
        return self._store_file(kind, content, file_name, mime_type).file_id

    def create_topic(self, chat_id: int, name: str, icon_color: int = FORUM_TOPIC_COLORS[0]) -> int:
        """Simulate staff creating a forum topic; returns its message_thread_id."""
        return self._new_topic(chat_id, name, icon_color, by_bot=False)["message_thread_id"]

    def delete_topic(self, chat_id: int, thread_id: int) -> None:
        """Simulate staff deleting a forum topic."""
        topic = self._topics.get(chat_id, {}).get(thread_id)
        if topic is None:
            raise KeyError(f"no topic {thread_id} in chat {chat_id}")
        topic["deleted"] = True

    def close_topic(self, chat_id: int, thread_id: int, closed: bool = True) -> None:
        """Simulate staff closing (or reopening) a forum topic."""
        self._topics[chat_id][thread_id]["closed"] = closed

    # ---------------------------------------------------------------- update builders

    def private_text(
        self,
        chat_id: int,
        text: str,
        first_name: str | None = None,
        last_name: str | None = None,
        username: str | None = None,
        *,
        reply_to_message_id: int | None = None,
    ) -> JSONDict:
        """An update with a private text message (commands get bot_command entities)."""
        return self.private_message(
            chat_id, first_name=first_name, last_name=last_name, username=username, reply_to_message_id=reply_to_message_id, text=text
        )

    def private_message(
        self,
        chat_id: int,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        username: str | None = None,
        reply_to_message_id: int | None = None,
        **fields: Any,
    ) -> JSONDict:
        """An update with any private message: pass Telegram fields (photo=[...], contact={...})."""
        user = self._register_user(chat_id, first_name, last_name, username, private=True)
        message = self._incoming(chat_id, user, reply_to_message_id=reply_to_message_id, **fields)
        return {"message": message}

    def group_message(
        self,
        chat_id: int,
        text: str | None = None,
        thread_id: int | None = None,
        from_user_id: int = DEFAULT_STAFF_USER_ID,
        is_topic_message: bool | None = None,
        *,
        first_name: str | None = None,
        username: str | None = None,
        reply_to_message_id: int | None = None,
        **fields: Any,
    ) -> JSONDict:
        """An update with a supergroup message; in a topic it has message_thread_id and
        is_topic_message=true (default when thread_id is given); General has neither."""
        if chat_id not in self._chats or self._chats[chat_id]["type"] == "private":
            raise ValueError(f"{chat_id} is not a known group chat")
        user = self._register_user(from_user_id, first_name or "Staff", None, username, private=False)
        self._members.setdefault(chat_id, set()).add(from_user_id)
        if text is not None:
            fields["text"] = text
        if is_topic_message is None:
            is_topic_message = thread_id is not None
        message = self._incoming(
            chat_id,
            user,
            thread_id=thread_id,
            is_topic_message=is_topic_message,
            reply_to_message_id=reply_to_message_id,
            **fields,
        )
        return {"message": message}

    def edited_message(self, chat_id: int, message_id: int, text: str | None = None, **fields: Any) -> JSONDict:
        """An edited_message update for a message built earlier (text and/or other fields)."""
        stored = self._messages.get((chat_id, message_id))
        if stored is None:
            raise ValueError(f"no message {message_id} in chat {chat_id}")
        if text is not None:
            fields["text"] = text
            fields.setdefault("entities", command_entities(text))
        stored.update(fields)
        if not stored.get("entities"):
            stored.pop("entities", None)
        stored["edit_date"] = int(time.time())
        return {"edited_message": copy.deepcopy(stored)}

    def callback_query(
        self, chat_id: int, data: str, message_id: int, from_user_id: int | None = None
    ) -> JSONDict:
        """A callback_query update: a user pressed a button of message ``message_id``."""
        user_id = from_user_id if from_user_id is not None else chat_id
        user = self._users.get(user_id) or self._register_user(user_id, None, None, None, private=False)
        message = self._messages.get((chat_id, message_id))
        if message is None:
            message = {
                "message_id": message_id,
                "from": self.bot_user,
                "chat": self._chat_json(chat_id),
                "date": int(time.time()),
                "text": "",
            }
        query_id = str(self._next_callback_id)
        self._next_callback_id += 1
        self._callback_ids.add(query_id)
        return {
            "callback_query": {
                "id": query_id,
                "from": copy.deepcopy(user),
                "message": _without_reply(message),
                "chat_instance": str((abs(chat_id) * 7919) % 10**18),
                "data": data,
            }
        }

    # ---------------------------------------------------------------- inspection

    def calls_to(self, method: str) -> list[Call]:
        """Calls of one method (case-insensitive), in arrival order."""
        key = self._method_key(method)
        return [c for c in self.calls if c.method.lower() == key]

    def sent_messages(self, chat_id: int, thread_id: int | None = None) -> list[JSONDict]:
        """Messages the bot sent/copied/forwarded into a chat (or one topic of it), in order.

        The dicts are the stored messages, so later edits show; deleted ones stay listed
        (see is_deleted()).
        """
        messages = self._sent.get(chat_id, [])
        if thread_id is None:
            return list(messages)
        return [m for m in messages if m.get("message_thread_id") == thread_id]

    def is_deleted(self, chat_id: int, message_id: int) -> bool:
        """Whether a message was deleted with deleteMessage."""
        return (chat_id, message_id) in self._deleted

    def topics(self, chat_id: int) -> dict[int, JSONDict]:
        """Forum topics of a chat: thread_id -> {"name", "icon_color", "closed", "deleted"}."""
        return {
            thread_id: {k: topic[k] for k in ("name", "icon_color", "closed", "deleted")}
            for thread_id, topic in self._topics.get(chat_id, {}).items()
        }

    @property
    def commands(self) -> list[JSONDict] | None:
        """Commands stored by setMyCommands for the default scope and no language."""
        return self.commands_for()

    def commands_for(self, scope: JSONDict | None = None, language_code: str = "") -> list[JSONDict] | None:
        """Commands stored for a scope/language (None when never set)."""
        commands = self._commands.get((self._scope_key(scope), language_code))
        return copy.deepcopy(commands) if commands is not None else None

    async def wait_for(
        self,
        method: str,
        predicate: Callable[[Call], bool] | None = None,
        timeout: float = 5.0,
        *,
        after: int = 0,
        answered: bool = True,
    ) -> Call:
        """The first call of ``method`` (from index ``after`` of ``calls``) that matches
        ``predicate(call)``, logged already or arriving within ``timeout``.

        By default only answered calls count; ``answered=False`` also matches a call that
        has arrived but is still in flight (a long poll, a delayed method).
        """
        key = self._method_key(method)

        def find() -> Call | None:
            for call in self.calls[after:]:
                if call.method.lower() == key and (call.status is not None or not answered):
                    if predicate is None or predicate(call):
                        return call
            return None

        return await self._wait(find, timeout, f"a {method} call" + (" matching the predicate" if predicate else ""))

    async def wait_for_message(
        self,
        chat_id: int,
        predicate: Callable[[JSONDict], bool] | None = None,
        thread_id: int | None = None,
        timeout: float = 5.0,
        *,
        after: int = 0,
    ) -> JSONDict:
        """The first message the bot sent into the chat/topic (from index ``after`` of
        sent_messages()) matching ``predicate(message)``, now or within ``timeout``."""

        def find() -> JSONDict | None:
            for message in self.sent_messages(chat_id, thread_id)[after:]:
                if predicate is None or predicate(message):
                    return message
            return None

        where = f"chat {chat_id}" + (f" thread {thread_id}" if thread_id is not None else "")
        return await self._wait(find, timeout, f"a message to {where}")

    async def post_to_webhook(self, update: JSONDict, secret_token: str | None = None) -> int:
        """POST an update to the URL set by setWebhook (with the secret header when given);
        returns the HTTP status."""
        if not self.webhook:
            raise AssertionError("no webhook is set (setWebhook was not called)")
        payload = copy.deepcopy(update)
        if "update_id" not in payload:
            payload = {"update_id": self._next_update_id, **payload}
            self._next_update_id += 1
        self._learn_from_update(payload)
        headers = {"Content-Type": "application/json"}
        if secret_token is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret_token
        async with aiohttp.ClientSession() as session:
            async with session.post(self.webhook["url"], data=json.dumps(payload), headers=headers) as resp:
                await resp.read()
                return resp.status

    # ---------------------------------------------------------------- HTTP layer

    async def _handle_api(self, request: web.Request) -> web.Response:
        arrival = time.monotonic()
        token, method = request.match_info["token"], request.match_info["method"]
        canonical = self._canonical.get(method.lower())
        call = Call(method=canonical or method, params={}, time=arrival)
        self.calls.append(call)
        try:
            if token != self.token:
                # Telegram: 401 for a well-formed but wrong token, 404 for a malformed one.
                if re.fullmatch(r"\d+:[\w-]+", token):
                    raise ApiError(401, "Unauthorized")
                raise ApiError(404, "Not Found")
            call.params = await decode_request(request)
            if canonical is None:
                raise ApiError(404, "Not Found")
            await self._notify()  # arrival, for wait_for(..., answered=False)
            await self._apply_delay(canonical)
            self._raise_injected_fault(canonical)
            if self.limits is not None and canonical.lower() in _LIMITED_METHODS:
                chat = _as_int(call.params.get("chat_id"))
                retry_after = self.limits.admit(chat, arrival) if chat is not None else None
                if retry_after is not None:
                    raise ApiError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})
            result = await self._handlers[canonical](call.params)
            status, body = 200, {"ok": True, "result": result}
        except ApiError as exc:
            status, body = exc.status, exc.body()
        except Exception as exc:  # a bug in the fake: answer 500 instead of hanging waiters
            status = 500
            body = {"ok": False, "error_code": 500, "description": f"Internal Server Error: {exc!r}"}
        call.status, call.response = status, body
        await self._notify()
        return web.json_response(body, status=status)

    async def _handle_file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        stored = self._files_by_path.get(request.match_info["path"])
        if stored is None:
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        return web.Response(body=stored.data, content_type=stored.mime_type or "application/octet-stream")

    async def _apply_delay(self, method: str) -> None:
        seconds = self._delays.get(method.lower(), self._delays.get("*", 0.0))
        if seconds > 0:
            await asyncio.sleep(seconds)

    def _raise_injected_fault(self, method: str) -> None:
        share, status, rng, methods = getattr(self, "_random_faults", (0.0, 502, None, set()))
        eligible = method.lower() in methods if methods else method.lower() not in ("getupdates", "getme")
        if share and rng is not None and eligible and rng.random() < share:
            raise ApiError(status, {500: "Internal Server Error", 502: "Bad Gateway"}.get(status, "Injected failure"), None)
        for key in (method.lower(), "*"):
            queue = self._faults.get(key)
            if not queue:
                continue
            fault = queue[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                queue.popleft()
            params = {"retry_after": fault.retry_after} if fault.retry_after else None
            raise ApiError(fault.status, fault.description, params)

    async def _notify(self) -> None:
        if self._cond is not None:
            async with self._cond:
                self._cond.notify_all()

    async def _wait(self, find: Callable[[], Any], timeout: float, what: str) -> Any:
        found = find()
        if found is not None:
            return found
        if self._cond is None:
            raise RuntimeError("FakeBotApi is not started")
        try:
            async with asyncio.timeout(timeout):
                async with self._cond:
                    while (found := find()) is None:
                        await self._cond.wait()
        except TimeoutError:
            raise AssertionError(self._timeout_report(what, timeout)) from None
        return found

    def _timeout_report(self, what: str, timeout: float) -> str:
        lines = [f"timed out after {timeout}s waiting for {what}; recent calls:"]
        recent = self.calls[-15:]
        if not recent:
            lines.append("  (no calls at all)")
        for call in recent:
            params = json.dumps(call.params, default=repr, ensure_ascii=False)
            if len(params) > 200:
                params = params[:197] + "..."
            outcome = "pending" if call.status is None else str(call.status)
            if call.description:
                outcome += f" {call.description!r}"
            lines.append(f"  {call.method} -> {outcome} {params}")
        return "\n".join(lines)

    @staticmethod
    def _method_key(method: str) -> str:
        return method.lower()

    # ---------------------------------------------------------------- state helpers

    def _register_user(
        self,
        user_id: int,
        first_name: str | None,
        last_name: str | None,
        username: str | None,
        *,
        private: bool,
    ) -> JSONDict:
        user = self._users.setdefault(
            user_id, {"id": user_id, "is_bot": False, "first_name": "Test", "language_code": "en"}
        )
        if first_name is not None:
            user["first_name"] = first_name
        if last_name is not None:
            user["last_name"] = last_name
        if username is not None:
            user["username"] = username
        # Keep User's key order realistic: id, is_bot, first_name, last_name, username, language_code.
        ordered = {k: user[k] for k in ("id", "is_bot", "first_name", "last_name", "username") if k in user}
        ordered.update({k: v for k, v in user.items() if k not in ordered})
        user.clear()
        user.update(ordered)
        if private:
            chat = {"id": user_id, "first_name": user["first_name"]}
            for key in ("last_name", "username"):
                if key in user:
                    chat[key] = user[key]
            chat["type"] = "private"
            self._chats[user_id] = chat
        return user

    def _chat_json(self, chat_id: int) -> JSONDict:
        chat = self._chats.get(chat_id)
        return copy.deepcopy(chat) if chat else {"id": chat_id, "type": "private", "first_name": "Unknown"}

    def _alloc_message_id(self, chat_id: int) -> int:
        message_id = self._message_ids.get(chat_id, 1)
        self._message_ids[chat_id] = message_id + 1
        return message_id

    def _incoming(
        self,
        chat_id: int,
        user: JSONDict,
        *,
        thread_id: int | None = None,
        is_topic_message: bool = False,
        reply_to_message_id: int | None = None,
        **fields: Any,
    ) -> JSONDict:
        message: JSONDict = {"message_id": self._alloc_message_id(chat_id)}
        if thread_id is not None:
            message["message_thread_id"] = thread_id
        message.update({"from": copy.deepcopy(user), "chat": self._chat_json(chat_id), "date": int(time.time())})
        if is_topic_message:
            message["is_topic_message"] = True
        if reply_to_message_id is not None:
            replied = self._messages.get((chat_id, reply_to_message_id))
            if replied is None:
                raise ValueError(f"no message {reply_to_message_id} in chat {chat_id} to reply to")
            message["reply_to_message"] = _without_reply(replied)
        if isinstance(fields.get("text"), str) and "entities" not in fields:
            entities = command_entities(fields["text"])
            if entities:
                fields["entities"] = entities
        message.update(fields)
        self._messages[(chat_id, message["message_id"])] = message
        self._learn_files(message)
        return copy.deepcopy(message)  # later edits of the stored message must not leak in

    def _learn_from_update(self, update: JSONDict) -> None:
        """Make chats, users, messages and file_ids of a hand-made update known."""
        for key, value in update.items():
            if key == "update_id" or not isinstance(value, dict):
                continue
            message = value.get("message") if key == "callback_query" else value
            sender = value.get("from")
            if isinstance(sender, dict) and isinstance(sender.get("id"), int) and not sender.get("is_bot"):
                self._users.setdefault(sender["id"], copy.deepcopy(sender))
            if not isinstance(message, dict) or not isinstance(message.get("chat"), dict):
                continue
            chat = message["chat"]
            chat_id = chat.get("id")
            if not isinstance(chat_id, int):
                continue
            if chat.get("type") == "private" and chat_id not in self._chats:
                self._chats[chat_id] = copy.deepcopy(chat)
            message_id = message.get("message_id")
            if isinstance(message_id, int) and key in ("message", "channel_post"):
                self._messages.setdefault((chat_id, message_id), copy.deepcopy(message))
                self._message_ids[chat_id] = max(self._message_ids.get(chat_id, 1), message_id + 1)
            self._learn_files(message)

    def _learn_files(self, obj: Any) -> None:
        if isinstance(obj, dict):
            file_id = obj.get("file_id")
            if isinstance(file_id, str) and file_id not in self._files:
                self._register_file(
                    _StoredFile(
                        file_id=file_id,
                        file_unique_id=obj.get("file_unique_id") or f"U{file_id[-12:]}",
                        kind="document",
                        data=b"",
                        file_path=f"documents/{file_id}",
                        file_name=obj.get("file_name"),
                        mime_type=obj.get("mime_type"),
                    )
                )
            for value in obj.values():
                self._learn_files(value)
        elif isinstance(obj, list):
            for value in obj:
                self._learn_files(value)

    def _register_file(self, stored: _StoredFile) -> _StoredFile:
        self._files[stored.file_id] = stored
        self._files_by_path[stored.file_path] = stored
        return stored

    def _store_file(
        self, kind: str, data: bytes, file_name: str | None = None, mime_type: str | None = None
    ) -> _StoredFile:
        self._file_counter += 1
        n = self._file_counter
        folder, ext, default_mime = _MEDIA_FOLDERS.get(kind, ("documents", "", "application/octet-stream"))
        if kind == "document" and file_name and "." in file_name:
            ext = file_name[file_name.rfind(".") :]
        return self._register_file(
            _StoredFile(
                file_id=f"{kind.upper()}-FILE-{n:06d}",
                file_unique_id=f"UNQ{n:06d}",
                kind=kind,
                data=data,
                file_path=f"{folder}/file_{n}{ext}",
                file_name=file_name,
                mime_type=mime_type or default_mime,
            )
        )

    def _new_topic(self, chat_id: int, name: str, icon_color: int, *, by_bot: bool) -> JSONDict:
        thread_id = self._alloc_message_id(chat_id)
        self._topics.setdefault(chat_id, {})[thread_id] = {
            "message_thread_id": thread_id,
            "name": name,
            "icon_color": icon_color,
            "closed": False,
            "deleted": False,
            "by_bot": by_bot,
        }
        return {"message_thread_id": thread_id, "name": name, "icon_color": icon_color}

    def _store_sent(self, chat_id: int, message: JSONDict) -> JSONDict:
        self._messages[(chat_id, message["message_id"])] = message
        self._sent.setdefault(chat_id, []).append(message)
        return message

    def _scope_key(self, scope: Any) -> str:
        if not scope:
            return '{"type": "default"}'
        return json.dumps(scope, sort_keys=True)

    # ---------------------------------------------------------------- validation helpers

    def _resolve_chat(self, chat_id: Any) -> int:
        """The known chat for ``chat_id`` or 400 chat not found."""
        if chat_id is None or chat_id == "":
            raise _bad_request("chat_id is empty")
        if isinstance(chat_id, str):
            if chat_id.startswith("@"):
                for known_id, chat in self._chats.items():
                    if chat.get("username", "").lower() == chat_id[1:].lower():
                        return known_id
                raise _bad_request("chat not found")
            if not re.fullmatch(r"-?\d+", chat_id):
                raise _bad_request("chat not found")
            chat_id = int(chat_id)
        if not isinstance(chat_id, int) or chat_id not in self._chats:
            raise _bad_request("chat not found")
        return chat_id

    def _is_bot_admin(self, chat_id: int) -> bool:
        return chat_id == self.staff_chat_id and self.bot_status in ("administrator", "creator")

    def _resolve_target(self, params: JSONDict, *, chat_key: str = "chat_id") -> tuple[int, int | None]:
        """Chat and topic a message goes to; refuses like Telegram."""
        chat_id = self._resolve_chat(params.get(chat_key))
        chat = self._chats[chat_id]
        if chat["type"] == "private" and chat_id in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if chat_id == self.staff_chat_id and self.bot_status in ("left", "kicked"):
            if self.bot_status == "kicked":
                raise ApiError(403, "Forbidden: bot was kicked from the supergroup chat")
            raise ApiError(403, "Forbidden: bot is not a member of the supergroup chat")
        thread_id = _as_int(params.get("message_thread_id"))
        if not thread_id:
            return chat_id, None
        topic = self._topics.get(chat_id, {}).get(thread_id)
        if topic is None or topic["deleted"]:
            raise _bad_request("message thread not found")
        if topic["closed"] and not self._is_bot_admin(chat_id):
            raise _bad_request("TOPIC_CLOSED")
        return chat_id, thread_id

    def _check_reply_markup(self, markup: Any) -> JSONDict | None:
        """Validate reply_markup; returns the inline keyboard Telegram echoes (or None)."""
        if markup is None or markup == "":
            return None
        if not isinstance(markup, dict):
            raise _bad_request("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            rows = markup["inline_keyboard"]
            if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
                raise _bad_request('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays')
            for row in rows:
                for button in row:
                    self._check_inline_button(button)
            return copy.deepcopy(markup) if any(rows) else None
        if "keyboard" in markup:
            rows = markup["keyboard"]
            if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
                raise _bad_request('field "keyboard" of the ReplyKeyboardMarkup must be an Array of Arrays')
            for row in rows:
                for button in row:
                    text = button.get("text") if isinstance(button, dict) else button
                    if not isinstance(text, str) or not text:
                        raise _bad_request("can't parse keyboard button: Text must be non-empty")
            return None
        if markup.get("remove_keyboard") or markup.get("force_reply"):
            return None
        raise _bad_request("can't parse reply keyboard markup JSON object")

    @staticmethod
    def _check_inline_button(button: Any) -> None:
        if not isinstance(button, dict):
            raise _bad_request("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
        if not isinstance(button.get("text"), str):
            raise _bad_request('can\'t parse inline keyboard button: Field "text" must be of type String')
        if not any(action in button for action in INLINE_BUTTON_ACTIONS):
            raise _bad_request("can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard")
        if "callback_data" in button:
            data = button["callback_data"]
            if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES:
                raise _bad_request("BUTTON_DATA_INVALID")
        if "url" in button:
            url = button["url"]
            if not isinstance(url, str) or _normalize_url(url) is None:
                raise _bad_request("BUTTON_URL_INVALID")

    def _text_content(self, params: JSONDict) -> JSONDict:
        raw = params.get("text")
        if raw is None or raw == "":
            raise _bad_request("message text is empty")
        text, entities = format_text(raw, params.get("parse_mode"), params.get("entities"))
        if not text:
            raise _bad_request("message text is empty")
        # Telegram counts "characters after entities parsing"; code points are used here.
        if len(text) > MAX_TEXT_LENGTH:
            raise _bad_request("message is too long")
        content: JSONDict = {"text": text}
        if entities:
            content["entities"] = entities
        return content

    def _caption_content(self, params: JSONDict) -> JSONDict:
        raw = params.get("caption")
        if raw is None or raw == "":
            return {}
        text, entities = format_text(raw, params.get("parse_mode"), params.get("caption_entities"))
        if len(text) > MAX_CAPTION_LENGTH:
            raise _bad_request("message caption is too long")
        if not text:
            return {}
        content: JSONDict = {"caption": text}
        if entities:
            content["caption_entities"] = entities
        return content

    def _reply_to(self, chat_id: int, params: JSONDict) -> JSONDict | None:
        reply = params.get("reply_parameters")
        if isinstance(reply, dict):
            message_id = _as_int(reply.get("message_id"))
            allow_missing = bool(reply.get("allow_sending_without_reply"))
            if reply.get("chat_id") not in (None, ""):
                chat_id = self._resolve_chat(reply.get("chat_id"))
        else:
            message_id = _as_int(params.get("reply_to_message_id"))
            allow_missing = bool(params.get("allow_sending_without_reply"))
        if not message_id:
            return None
        replied = self._messages.get((chat_id, message_id))
        if replied is None or (chat_id, message_id) in self._deleted:
            if allow_missing:
                return None
            raise _bad_request("message to be replied not found")
        return _without_reply(replied)

    def _resolve_input_file(self, value: Any, params: JSONDict, kind: str) -> _StoredFile:
        """An uploaded, attached, URL or known file_id input; refuses unknown file_ids."""
        if isinstance(value, str) and value.startswith("attach://"):
            value = params.get(value[len("attach://") :])
            if value is None:
                raise _bad_request("wrong file identifier/HTTP URL specified")
        if isinstance(value, UploadedFile):
            return self._store_file(kind, value.data, value.filename, value.content_type)
        if isinstance(value, str) and re.match(r"^https?://", value):
            name = value.rstrip("/").rsplit("/", 1)[-1] or None
            return self._store_file(kind, b"", name, None)
        if isinstance(value, str) and value in self._files:
            return self._files[value]
        raise _bad_request("wrong file identifier/HTTP URL specified")

    @staticmethod
    def _media_json(kind: str, stored: _StoredFile, params: JSONDict) -> JSONDict:
        """The Telegram object for a sent file (PhotoSize list, Document, Voice, ...)."""
        base = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id}
        size = len(stored.data)
        width = _as_int(params.get("width"), 640)
        height = _as_int(params.get("height"), 360)
        duration = _as_int(params.get("duration"), 1)
        if kind == "photo":
            thumb = {
                "file_id": f"{stored.file_id}-s",
                "file_unique_id": f"{stored.file_unique_id}s",
                "width": 90,
                "height": 60,
                "file_size": max(size // 10, 1),
            }
            return {"photo": [thumb, {**base, "width": 800, "height": 533, "file_size": size}]}
        if kind == "sticker":
            sticker = {
                **base,
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
                "file_size": size,
            }
            if params.get("emoji"):
                sticker["emoji"] = params["emoji"]
            return {"sticker": sticker}
        if kind == "voice":
            return {"voice": {**base, "duration": duration, "mime_type": "audio/ogg", "file_size": size}}
        if kind == "audio":
            return {"audio": {**base, "duration": duration, "mime_type": "audio/mpeg", "file_size": size}}
        if kind == "video_note":
            return {"video_note": {**base, "length": 240, "duration": duration, "file_size": size}}
        if kind in ("video", "animation"):
            video = {
                **base,
                "width": width,
                "height": height,
                "duration": duration,
                "mime_type": "video/mp4",
                "file_size": size,
            }
            if kind == "video":
                return {"video": video}
            # Telegram sends an animation together with its Document twin.
            name = stored.file_name or "animation.mp4"
            document = {**base, "file_name": name, "mime_type": "video/mp4", "file_size": size}
            return {"animation": {**video, "file_name": name}, "document": document}
        document = {
            **base,
            "file_name": stored.file_name or "document",
            "mime_type": stored.mime_type or "application/octet-stream",
            "file_size": size,
        }
        return {"document": document}

    def _new_bot_message(
        self,
        chat_id: int,
        thread_id: int | None,
        content: JSONDict,
        *,
        reply_markup: JSONDict | None = None,
        reply_to: JSONDict | None = None,
        extra: JSONDict | None = None,
    ) -> JSONDict:
        message: JSONDict = {"message_id": self._alloc_message_id(chat_id)}
        if thread_id is not None:
            message["message_thread_id"] = thread_id
        message.update({"from": copy.deepcopy(self.bot_user), "chat": self._chat_json(chat_id), "date": int(time.time())})
        if thread_id is not None:
            message["is_topic_message"] = True
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        if extra:
            message.update(extra)
        message.update(copy.deepcopy(content))
        if reply_markup:
            message["reply_markup"] = reply_markup
        return self._store_sent(chat_id, message)

    def _find_message(self, params: JSONDict, missing: str) -> tuple[int, JSONDict]:
        chat_id = self._resolve_chat(params.get("chat_id"))
        message_id = _as_int(params.get("message_id"))
        if not message_id:
            raise _bad_request("message identifier is not specified")
        message = self._messages.get((chat_id, message_id))
        if message is None or (chat_id, message_id) in self._deleted:
            raise _bad_request(missing)
        return chat_id, message

    def _check_topic_rights(self, chat_id: int) -> None:
        if chat_id != self.staff_chat_id or not self.staff_is_forum:
            raise _bad_request("the chat is not a forum")

    # ---------------------------------------------------------------- Bot API methods

    async def _api_true(self, params: JSONDict) -> bool:
        return True

    async def _api_get_me(self, params: JSONDict) -> JSONDict:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _api_get_updates(self, params: JSONDict) -> list[JSONDict]:
        if self.webhook:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = _as_int(params.get("offset"), 0) or 0
        limit = min(max(_as_int(params.get("limit"), 100) or 100, 1), 100)
        timeout = max(float(params.get("timeout") or 0), 0.0)
        if isinstance(params.get("allowed_updates"), list):
            self.allowed_updates = list(params["allowed_updates"])
        self._confirm(offset)
        # A newer getUpdates terminates an older pending one, as on Telegram.
        self._poll_generation += 1
        generation = self._poll_generation
        assert self._updates_changed is not None
        self._updates_changed.set()
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            batch = self._collect_updates(limit)
            remaining = deadline - asyncio.get_running_loop().time()
            if batch or remaining <= 0 or self._closing:
                return batch
            self._updates_changed.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._updates_changed.wait()
            except TimeoutError:
                pass

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            self.confirmed_offset = max(self.confirmed_offset, offset)
        elif offset < 0:
            self._updates = self._updates[offset:]
            first = self._updates[0]["update_id"] if self._updates else self._next_update_id
            self.confirmed_offset = max(self.confirmed_offset, first)

    def _update_allowed(self, update: JSONDict) -> bool:
        kind = next((k for k in update if k != "update_id"), None)
        if not self.allowed_updates:
            return kind not in DEFAULT_EXCLUDED_UPDATES
        return kind in self.allowed_updates

    def _collect_updates(self, limit: int) -> list[JSONDict]:
        # Updates of types the bot did not ask for are never delivered (and not kept).
        self._updates = [u for u in self._updates if self._update_allowed(u)]
        return copy.deepcopy(self._updates[:limit])

    async def _api_set_webhook(self, params: JSONDict) -> bool:
        url = params.get("url", "")
        if not url:
            self.webhook = None
            return True
        if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
            raise _bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        if isinstance(params.get("allowed_updates"), list):
            self.allowed_updates = list(params["allowed_updates"])
        if params.get("drop_pending_updates"):
            self._drop_pending()
        self.webhook = {
            "url": url,
            "secret_token": params.get("secret_token"),
            "max_connections": _as_int(params.get("max_connections"), 40),
            "allowed_updates": params.get("allowed_updates"),
            "ip_address": params.get("ip_address"),
        }
        return True

    def _drop_pending(self) -> None:
        self._updates.clear()
        self.confirmed_offset = max(self.confirmed_offset, self._next_update_id)

    async def _api_delete_webhook(self, params: JSONDict) -> bool:
        self.webhook = None
        if params.get("drop_pending_updates"):
            self._drop_pending()
        return True

    async def _api_get_webhook_info(self, params: JSONDict) -> JSONDict:
        info: JSONDict = {
            "url": self.webhook["url"] if self.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self.webhook:
            info["max_connections"] = self.webhook["max_connections"]
            if self.webhook.get("allowed_updates"):
                info["allowed_updates"] = self.webhook["allowed_updates"]
            if self.webhook.get("ip_address"):
                info["ip_address"] = self.webhook["ip_address"]
        return info

    async def _api_set_my_commands(self, params: JSONDict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad_request("can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict) or not re.fullmatch(r"[a-z0-9_]{1,32}", str(command.get("command", ""))):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not str(command.get("description", "")).strip():
                raise _bad_request("command description is empty")
        key = (self._scope_key(params.get("scope")), params.get("language_code") or "")
        self._commands[key] = [{"command": c["command"], "description": c["description"]} for c in commands]
        return True

    async def _api_get_my_commands(self, params: JSONDict) -> list[JSONDict]:
        return self.commands_for(params.get("scope"), params.get("language_code") or "") or []

    async def _api_delete_my_commands(self, params: JSONDict) -> bool:
        self._commands.pop((self._scope_key(params.get("scope")), params.get("language_code") or ""), None)
        return True

    async def _api_get_chat(self, params: JSONDict) -> JSONDict:
        chat_id = self._resolve_chat(params.get("chat_id"))
        info = {
            **copy.deepcopy(self._chats[chat_id]),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": True,
                "limited_gifts": True,
                "unique_gifts": True,
                "premium_subscription": True,
                "gifts_from_channels": True,
            },
        }
        if info["type"] == "supergroup":
            info["is_forum"] = self.staff_is_forum if chat_id == self.staff_chat_id else bool(info.get("is_forum"))
            info["permissions"] = {
                "can_send_messages": True,
                "can_send_photos": True,
                "can_send_documents": True,
                "can_invite_users": True,
                "can_manage_topics": False,
            }
        return info

    async def _api_leave_chat(self, params: JSONDict) -> bool:
        chat_id = self._resolve_chat(params.get("chat_id"))
        self.left_chats.add(chat_id)
        return True

    async def _api_get_chat_member(self, params: JSONDict) -> JSONDict:
        chat_id = self._resolve_chat(params.get("chat_id"))
        user_id = _as_int(params.get("user_id"))
        if user_id == self.bot_user["id"]:
            if chat_id == self.staff_chat_id and self.bot_status == "administrator":
                return {
                    "status": "administrator",
                    "user": copy.deepcopy(self.bot_user),
                    **ADMIN_RIGHTS,
                    "can_manage_topics": self.bot_can_manage_topics,
                }
            status = self.bot_status if chat_id == self.staff_chat_id else "member"
            if status not in ("member", "left"):
                status = "member"
            return {"status": status, "user": copy.deepcopy(self.bot_user)}
        user = self._users.get(user_id) if user_id is not None else None
        if user is None:
            raise _bad_request("user not found")
        if self._chats[chat_id]["type"] == "private":
            status = "member" if user_id == chat_id else "left"
        elif chat_id == self.staff_chat_id and user_id in self.staff_admins:
            return {"status": "administrator", "user": copy.deepcopy(user), **ADMIN_RIGHTS, "can_manage_topics": True}
        else:
            status = "member" if user_id in self._members.get(chat_id, set()) else "left"
        return {"status": status, "user": copy.deepcopy(user)}

    async def _api_get_file(self, params: JSONDict) -> JSONDict:
        stored = self._files.get(str(params.get("file_id", "")))
        if stored is None:
            raise _bad_request("invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": stored.file_path,
        }

    async def _api_send_message(self, params: JSONDict) -> JSONDict:
        chat_id, thread_id = self._resolve_target(params)
        content = self._text_content(params)
        markup = self._check_reply_markup(params.get("reply_markup"))
        reply_to = self._reply_to(chat_id, params)
        return self._new_bot_message(chat_id, thread_id, content, reply_markup=markup, reply_to=reply_to)

    async def _api_send_media(self, params: JSONDict, *, kind: str) -> JSONDict:
        chat_id, thread_id = self._resolve_target(params)
        value = params.get(kind)
        if value is None or value == "":
            raise _bad_request(f"there is no {kind} in the request")
        caption = self._caption_content(params) if kind != "sticker" else {}
        markup = self._check_reply_markup(params.get("reply_markup"))
        reply_to = self._reply_to(chat_id, params)
        stored = self._resolve_input_file(value, params, kind)
        content = {**self._media_json(kind, stored, params), **caption}
        return self._new_bot_message(chat_id, thread_id, content, reply_markup=markup, reply_to=reply_to)

    async def _api_send_media_group(self, params: JSONDict) -> list[JSONDict]:
        chat_id, thread_id = self._resolve_target(params)
        media = params.get("media")
        if not isinstance(media, list) or not media:
            raise _bad_request("media is empty")
        reply_to = self._reply_to(chat_id, params)
        prepared = []
        for item in media:
            if not isinstance(item, dict) or item.get("type") not in ("photo", "video", "document", "audio"):
                raise _bad_request("can't parse InputMedia: Media type must be one of photo, video, document, audio")
            caption = self._caption_content(item)
            stored = self._resolve_input_file(item.get("media"), params, item["type"])
            prepared.append({**self._media_json(item["type"], stored, item), **caption})
        group_id = str(13_000_000_000_000_000 + self._file_counter)
        return [
            self._new_bot_message(chat_id, thread_id, content, reply_to=reply_to, extra={"media_group_id": group_id})
            for content in prepared
        ]

    async def _api_copy_message(self, params: JSONDict) -> JSONDict:
        chat_id, thread_id = self._resolve_target(params)
        source_chat, source = self._find_message(
            {"chat_id": params.get("from_chat_id"), "message_id": params.get("message_id")},
            "message to copy not found",
        )
        content = {k: copy.deepcopy(source[k]) for k in CONTENT_FIELDS if k in source}
        if "caption" in params:
            content.pop("caption", None)
            content.pop("caption_entities", None)
            content.update(self._caption_content(params))
        markup = self._check_reply_markup(params.get("reply_markup"))
        reply_to = self._reply_to(chat_id, params)
        message = self._new_bot_message(chat_id, thread_id, content, reply_markup=markup, reply_to=reply_to)
        self.copies.append(
            {
                "from_chat_id": source_chat,
                "message_id": source["message_id"],
                "chat_id": chat_id,
                "message_thread_id": thread_id,
                "new_message_id": message["message_id"],
            }
        )
        return {"message_id": message["message_id"]}

    async def _api_forward_message(self, params: JSONDict) -> JSONDict:
        chat_id, thread_id = self._resolve_target(params)
        source_chat, source = self._find_message(
            {"chat_id": params.get("from_chat_id"), "message_id": params.get("message_id")},
            "message to forward not found",
        )
        content = {k: copy.deepcopy(source[k]) for k in CONTENT_FIELDS if k in source}
        origin = {"type": "user", "sender_user": copy.deepcopy(source.get("from", self.bot_user)), "date": source["date"]}
        message = self._new_bot_message(chat_id, thread_id, content, extra={"forward_origin": origin})
        self.forwards.append(
            {
                "from_chat_id": source_chat,
                "message_id": source["message_id"],
                "chat_id": chat_id,
                "message_thread_id": thread_id,
                "new_message_id": message["message_id"],
            }
        )
        return message

    def _editable(self, params: JSONDict) -> tuple[int, JSONDict] | None:
        """The bot message to edit, or None for inline messages."""
        if params.get("inline_message_id"):
            return None
        chat_id, message = self._find_message(params, "message to edit not found")
        if message.get("from", {}).get("id") != self.bot_user["id"]:
            raise _bad_request("message can't be edited")
        return chat_id, message

    @staticmethod
    def _apply_edit(message: JSONDict, changes: JSONDict, markup: JSONDict | None) -> JSONDict:
        """Apply an edit or refuse it as 'not modified' when nothing changes."""
        before = {k: message.get(k) for k in (*changes, "reply_markup")}
        after = {**changes, "reply_markup": markup}
        if before == after:
            raise _bad_request(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        for key, value in after.items():
            if value in (None, []):
                message.pop(key, None)
            else:
                message[key] = copy.deepcopy(value)
        message["edit_date"] = int(time.time())
        return message

    async def _api_edit_message_text(self, params: JSONDict) -> JSONDict | bool:
        target = self._editable(params)
        content = self._text_content(params)
        markup = self._check_reply_markup(params.get("reply_markup"))
        if target is None:
            return True
        _, message = target
        if "text" not in message:
            raise _bad_request("there is no text in the message to edit")
        changes = {"text": content["text"], "entities": content.get("entities")}
        return self._apply_edit(message, changes, markup)

    async def _api_edit_message_caption(self, params: JSONDict) -> JSONDict | bool:
        target = self._editable(params)
        caption = self._caption_content(params)
        markup = self._check_reply_markup(params.get("reply_markup"))
        if target is None:
            return True
        _, message = target
        if "text" in message:
            raise _bad_request("there is no caption in the message to edit")
        changes = {"caption": caption.get("caption"), "caption_entities": caption.get("caption_entities")}
        return self._apply_edit(message, changes, markup)

    async def _api_edit_message_reply_markup(self, params: JSONDict) -> JSONDict | bool:
        target = self._editable(params)
        markup = self._check_reply_markup(params.get("reply_markup"))
        if target is None:
            return True
        return self._apply_edit(target[1], {}, markup)

    async def _api_delete_message(self, params: JSONDict) -> bool:
        chat_id, message = self._find_message(params, "message to delete not found")
        self._deleted.add((chat_id, message["message_id"]))
        return True

    async def _api_answer_callback_query(self, params: JSONDict) -> bool:
        query_id = str(params.get("callback_query_id", ""))
        if query_id not in self._callback_ids or query_id in self.answered_callbacks:
            raise _bad_request("query is too old and response timeout expired or query ID is invalid")
        if len(str(params.get("text") or "")) > 200:
            raise _bad_request("MESSAGE_TOO_LONG")
        self.answered_callbacks[query_id] = dict(params)
        return True

    async def _api_send_chat_action(self, params: JSONDict) -> bool:
        self._resolve_target(params)
        if params.get("action") not in CHAT_ACTIONS:
            raise _bad_request("wrong parameter action in request")
        return True

    async def _api_create_forum_topic(self, params: JSONDict) -> JSONDict:
        chat_id = self._resolve_chat(params.get("chat_id"))
        self._check_topic_rights(chat_id)
        if not (self._is_bot_admin(chat_id) and self.bot_can_manage_topics):
            raise _bad_request("not enough rights to create a topic")
        name = str(params.get("name") or "").strip()
        if not name:
            raise _bad_request("TOPIC_TITLE_EMPTY")
        if len(name) > 128:
            raise _bad_request("TOPIC_TITLE_TOO_LONG")
        icon_color = _as_int(params.get("icon_color"), FORUM_TOPIC_COLORS[0])
        if icon_color not in FORUM_TOPIC_COLORS:
            raise _bad_request("TOPIC_ICON_COLOR_INVALID")
        topic = self._new_topic(chat_id, name, icon_color, by_bot=True)
        if params.get("icon_custom_emoji_id"):
            topic["icon_custom_emoji_id"] = params["icon_custom_emoji_id"]
        return topic

    def _managed_topic(self, params: JSONDict) -> JSONDict:
        """The topic a topic method acts on, if it exists and the bot may manage it."""
        chat_id = self._resolve_chat(params.get("chat_id"))
        self._check_topic_rights(chat_id)
        thread_id = _as_int(params.get("message_thread_id"))
        topic = self._topics.get(chat_id, {}).get(thread_id or 0)
        if topic is None or topic["deleted"]:
            raise _bad_request("TOPIC_ID_INVALID")
        may_manage = self._is_bot_admin(chat_id) and (self.bot_can_manage_topics or topic["by_bot"])
        if not may_manage:
            raise _bad_request("not enough rights to manage topics")
        return topic

    async def _api_edit_forum_topic(self, params: JSONDict) -> bool:
        topic = self._managed_topic(params)
        name = params.get("name")
        if name is not None and not str(name).strip():
            raise _bad_request("TOPIC_TITLE_EMPTY")
        if name is None or name == topic["name"]:
            if "icon_custom_emoji_id" not in params:
                raise _bad_request("TOPIC_NOT_MODIFIED")
        if name is not None:
            topic["name"] = str(name)
        return True

    async def _api_set_topic_closed(self, params: JSONDict, *, closed: bool) -> bool:
        topic = self._managed_topic(params)
        if topic["closed"] == closed:
            raise _bad_request("TOPIC_NOT_MODIFIED")
        topic["closed"] = closed
        return True

    async def _api_delete_forum_topic(self, params: JSONDict) -> bool:
        topic = self._managed_topic(params)
        topic["deleted"] = True
        return True

    # ---------------------------------------------------------------- fuzzing helpers

    def deliver_every_update_type(self) -> None:
        """From now on, deliver queued updates of every type, whatever allowed_updates says.

        Telegram applies allowed_updates only to updates created after the call that set
        it, so updates of other types already queued (member updates, polls, reactions...)
        still reach the bot once; a robust bot copes with every kind.
        """
        self._update_allowed = lambda update: True  # type: ignore[method-assign]

    def new_callback_query_id(self) -> str:
        """A fresh callback query id that answerCallbackQuery accepts (once), for hand-made queries."""
        query_id = str(self._next_callback_id)
        self._next_callback_id += 1
        self._callback_ids.add(query_id)
        return query_id

    def refuse_uncopyable_messages(self) -> None:
        """From now on, copyMessage refuses what Telegram cannot copy, as Telegram does.

        Bot API: "Service messages, paid media messages, giveaway messages, giveaway
        winners messages, and invoice messages can't be copied. A quiz poll can be copied
        only if the value of the field correct_option_id is known to the bot." (Bot API 9.6
        replaced correct_option_id with correct_option_ids.)
        """
        uncopyable = frozenset(  # service messages, invoices, giveaways, paid media
            {
                "new_chat_members",
                "left_chat_member",
                "new_chat_title",
                "new_chat_photo",
                "delete_chat_photo",
                "group_chat_created",
                "supergroup_chat_created",
                "channel_chat_created",
                "message_auto_delete_timer_changed",
                "migrate_to_chat_id",
                "migrate_from_chat_id",
                "pinned_message",
                "invoice",
                "successful_payment",
                "refunded_payment",
                "users_shared",
                "chat_shared",
                "gift",
                "unique_gift",
                "connected_website",
                "write_access_allowed",
                "passport_data",
                "proximity_alert_triggered",
                "boost_added",
                "chat_background_set",
                "forum_topic_created",
                "forum_topic_edited",
                "forum_topic_closed",
                "forum_topic_reopened",
                "general_forum_topic_hidden",
                "general_forum_topic_unhidden",
                "giveaway_created",
                "giveaway",
                "giveaway_winners",
                "giveaway_completed",
                "video_chat_scheduled",
                "video_chat_started",
                "video_chat_ended",
                "video_chat_participants_invited",
                "web_app_data",
                "paid_media",
            }
        )
        plain_copy = self._handlers["copyMessage"]

        async def strict_copy(params: JSONDict) -> JSONDict:
            source = self._messages.get((_as_int(params.get("from_chat_id"), 0) or 0, _as_int(params.get("message_id"), 0) or 0))
            if source is not None:
                poll = source.get("poll")
                quiz_unknown = (
                    isinstance(poll, dict)
                    and poll.get("type") == "quiz"
                    and "correct_option_id" not in poll
                    and "correct_option_ids" not in poll
                )
                if quiz_unknown or any(key in source for key in uncopyable):
                    raise _bad_request("the message can't be copied")
            return await plain_copy(params)

        self._handlers["copyMessage"] = strict_copy

    async def deliver_to_webhook(self, attempts: int = 3) -> None:
        """Act as Telegram in webhook mode: POST queued updates, in order, to the registered webhook.

        Run it as a task (cancel it to stop). Each answer is recorded in ``webhook_answers``
        as (update_id, HTTP status); an update answered with anything but 2xx is posted
        again, up to ``attempts`` times in all, then dropped, as Telegram gives up on it.
        Updates are confirmed as they are delivered, so test helpers built on
        push_update() (the harness's say() and barrier()) work in webhook mode too.
        """
        assert self._updates_changed is not None, "FakeBotApi is not started"
        self.webhook_answers: list[tuple[int, int]] = []
        while not self._closing:
            pending = [u for u in self._updates if self._update_allowed(u)] if self.webhook else []
            if not pending:
                self._updates_changed.clear()
                await self._updates_changed.wait()
                continue
            update = pending[0]
            self._updates.remove(update)
            self.confirmed_offset = max(self.confirmed_offset, update["update_id"] + 1)
            for _ in range(attempts):
                status = await self.post_to_webhook(update, secret_token=(self.webhook or {}).get("secret_token"))
                self.webhook_answers.append((update["update_id"], status))
                if 200 <= status < 300:
                    break


def _without_reply(message: JSONDict) -> JSONDict:
    """A copy of a message fit for reply_to_message (Telegram does not nest replies)."""
    out = copy.deepcopy(message)
    out.pop("reply_to_message", None)
    return out
