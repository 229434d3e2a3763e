"""Property-based robustness: the bot survives every kind of update Telegram sends.

Hypothesis generates batches of realistic but hostile updates: patients' texts (odd
Unicode, RTL and zero-width marks, control characters, up to 10,000 characters),
commands, every kind of media, albums, contacts, live locations, forwards, edits,
button presses with stale, forged or oversized data or an inaccessible message,
reactions, blocking and unblocking the bot, service messages; staff messages in the
General topic, in patients' topics and in unknown ones, forum service messages,
anonymous admins, other bots, staff closing and deleting topics; other groups,
channels, business messages, member updates, join requests, polls, poll answers,
inline queries, boosts, unknown fields and unknown update types. Every update is one
Telegram could send: python-telegram-bot must be able to read it (checked).

ONE bot (the real Application against the fake Bot API server, through the harness)
serves the whole run, on an event loop in a background thread, so state builds up
from batch to batch: bookings, handoffs and topics of earlier batches' patients. The
run is made twice: with the bot polling, and with it behind a webhook that the fake
server calls as Telegram does. The fake server delivers every update type whatever
``allowed_updates`` says (Telegram still delivers what was queued before it was set)
and refuses to copy what Telegram cannot copy (service messages, quiz polls).

In each batch, one to three *probe* patients (new, so never in a handoff) send one
message each, at random places. After every batch:

* the bot still runs: a fresh sentinel patient is answered (the harness barrier), and
  the Application and its Updater are running; in webhook mode every POST got a 2xx;
* it is not silent: every probe patient got a reply;
* nothing was logged at ERROR (by the error handler, python-telegram-bot, the outbox...),
  except giving up on a patient who blocked the bot;
* Telegram refused nothing the bot sent, except what the batch made unavoidable:
  answering a stale callback query, a send into a topic staff deleted, a send to a
  patient who blocked the bot; and no refused request was sent again and again;
* it does not loop: a batch costs a few requests an update, not thousands;
* the bot wrote only to patients and to the staff group, and copied only from the staff
  group to patients and from patients to the staff group.

Problems are collected over the whole run (once the bot stops answering or loops, the
bot is stopped and the rest skipped) and reported once per kind, with the first batch that showed it, its updates
shortened. Batches are not shrunk: against a live bot whose state depends on every
earlier batch, a shrunk batch proves little and shrinking takes minutes.
FUZZ_EXAMPLES=n sets the number of batches (150 by default: about 4,000 updates a mode).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import json
import logging
import os
import re
import socket
import string
import threading
import time
import traceback
from collections import Counter
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Self, TypeVar

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from telegram import Update  # noqa: E402

from bot.knowledge_files import load_knowledge  # noqa: E402
from bot.config import WebhookConfig  # noqa: E402
from bot.adapters.telegram.webhook import open_webhook  # noqa: E402
from tests import bot_harness  # noqa: E402
from tests.bot_harness import BotHarness  # noqa: E402
from tests.conftest import FAQ_DIR  # noqa: E402
from tests.fake_bot_api import ADMIN_RIGHTS, FakeBotApi  # noqa: E402

JSONDict = dict[str, Any]
T = TypeVar("T")

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))  # x ~25-30 updates a batch
MIN_UPDATES = min(2_000, EXAMPLES * 12)  # the run must really deliver thousands
RUNAWAY_CALLS = 1_000  # requests in one batch beyond which the bot is looping
BATCH = (8, 24)  # single steps of a batch, besides its handoff scenes and probes

PROBE_BASE = 7_100_000_000  # probes: a fresh patient each
SENTINEL_BASE = 7_900_000_000  # barrier sentinels: a fresh one each (one chat saying hello 150 times would be flooding)
PATIENT_BASE = 3_000  # the batches' patients: 3001, 3002... (some come back in later batches)
STAFF_USERS = (5550001, 5550002, 5550003)
ANONYMOUS_ADMIN = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
OTHER_BOT = {"id": 6_000_001, "is_bot": True, "first_name": "Helper", "username": "helper_bot"}
TELEGRAM_SERVICE = {"id": 777000, "is_bot": False, "first_name": "Telegram"}
OTHER_GROUPS = {-100_777: True, -100_778: False}  # id -> is_forum
CHANNEL = {"id": -1_009_990_001, "type": "channel", "title": "Clinic news", "username": "clinic_news"}
STRANGERS = (8_001, 8_002, 8_003)  # users seen only in groups, polls, inline queries

KNOWLEDGE = load_knowledge(FAQ_DIR)
TEXTS = KNOWLEDGE.texts
FAQ_IDS = [entry.id for entry in KNOWLEDGE.entries]


# ======================================================================================
# Strategies: text
# ======================================================================================

# fmt: off
ODD = [
    "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff",  # zero-width
    "\u202e", "\u202d", "\u202a", "\u202c", "\u200f", "\u200e", "\u061c", "\u2067", "\u2069",  # bidi controls
    "\u0301", "\u0489", "e\u0301\u0301\u0301", "Z\u0351\u0358\u0327",  # combining marks
    "\u00a0", "\u3000", "\u2028", "\u2029", "\u0085", "\t", "\n", "\r\n",  # unusual spaces and breaks
    "\x00", "\x07", "\x08", "\x1b", "\x1c", "\x7f", "\ufffd", "\ufffe", "\uffff",  # controls, non-characters
    "\U0001f600", "\U0001f468\u200d\U0001f469\u200d\U0001f467", "\U0001f1f0\U0001f1f7", "\U0001f3f3\ufe0f\u200d\U0001f308",
    "\U0001f44d\U0001f3fd", "\u2764\ufe0f", "\U000e0067", "\U0010fffd", "\ue000", "\U0001d573",  # emoji, tags, private use
    "\u0130", "\u00df", "\u0149", "\ufb03", "\u1e9e", "\u03a3",  # case-folding surprises
    "\u0645\u0631\u062d\u0628\u0627", "\u05e9\u05dc\u05d5\u05dd", "\uc548\ub155\ud558\uc138\uc694", "\ud749\ud130",
    "\u043f\u0440\u0438\u0432\u0435\u0442", "\u4f60\u597d", "\u3053\u3093\u306b\u3061\u306f", "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35",
    "\u0928\u092e\u0938\u094d\u0924\u0947", "\ufdfd",
    "<b>", "</i>", "<a href=\"tg://user?id=1\">", "&amp;", "&lt;", "&#0;", "&#xD800;", "<tg-spoiler>",
    "*bold*", "_it_", "`code`", "```", "[x](http://a)", "\\", "\"", "'", "{}", "{0}", "{topic}", "{reason}", "%s", "%(x)s",
    "@test_bot", "@", "#hashtag", "https://example.com/?q=1&r=2", "+82 10-1234-5678", "010 1234 5678", "+1 (555) 010-9999",
    "faq:", "do:book", "staff:close", "/", "//", "/start", "/human", "/close",
]
WORDS = [
    "hello", "hi", "thanks", "thank you so much", "does it leave a scar", "how long is recovery", "how much does it cost",
    "price?", "i want to book", "appointment please", "talk to a human", "connect me to a person", "agent",
    "my face is bleeding and swollen", "i can't breathe after surgery", "fever 39", "smas", "mini lift", "anesthesia",
    "is it safe", "yes", "no", "ok", "skip", "cancel", "Ana", "Ana Kim", "tomorrow morning", "any time", "?", "!!!",
    "...", "hmm", "x", "1", "0", "-", "\U0001f602\U0001f602", "okay i agree", "confirm",
    *(entry.questions[0] for entry in KNOWLEDGE.entries),
    *(TEXTS[key] for key in TEXTS if key.startswith("button_")),
    *KNOWLEDGE.booking.time_options,
]
COMMANDS = ["start", "help", "book", "human", "end", "cancel", "forget", "note", "close", "open", "START", "Human", "settings", "x", "a" * 32]
# fmt: on


def telegram_trimmed(text: str) -> str:
    """Telegram strips leading and trailing whitespace and never delivers an empty text."""
    return text.strip() or "\u2060"


pieces = st.one_of(
    st.sampled_from(WORDS),
    st.sampled_from(ODD),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=8),
    st.text(st.characters(codec="utf-8", categories=("Lu", "Ll", "Lo", "Mn", "Nd", "Zs", "So", "Po")), min_size=1, max_size=12),
)
short_texts = st.lists(pieces, min_size=1, max_size=10).flatmap(lambda parts: st.sampled_from([" ", "", "\n"]).map(lambda sep: sep.join(parts)))
# Long texts by repetition: Hypothesis cannot draw 10,000 characters one by one.
long_texts = st.tuples(short_texts, st.integers(1_000, 10_000)).map(lambda t: ((t[0] + " ") * (t[1] // (len(t[0]) + 1) + 1))[: t[1]])
commands = st.tuples(
    st.sampled_from(COMMANDS),
    st.sampled_from(["", "@test_bot", "@TEST_BOT", "@other_bot", "@"]),
    st.one_of(st.just(""), short_texts.map(lambda t: " " + t)),
).map(lambda c: f"/{c[0]}{c[1]}{c[2]}")
patient_texts = st.one_of(short_texts, short_texts, commands, long_texts).map(telegram_trimmed)
staff_texts = st.one_of(short_texts, short_texts, commands, long_texts.map(lambda t: t[:4096])).map(telegram_trimmed)
captions = short_texts.map(lambda t: telegram_trimmed(t)[:1024])
names = st.lists(
    st.one_of(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), st.sampled_from(["\u200b", "\u202e", "<b>", "&", "\U0001f600", "</a>"])),
    min_size=1,
    max_size=30,
).map(lambda chars: "".join(chars)[:64].strip() or "\u3164")  # Telegram users with "invisible" names use U+3164
usernames = st.one_of(st.none(), st.from_regex(r"[A-Za-z][A-Za-z0-9_]{4,31}", fullmatch=True))
emojis = st.sampled_from(["\U0001f44d", "\u2764", "\U0001f525", "\U0001f622", "\U0001f914", "\U0001f4a9", "\U0001f44e"])

# Callback data: what the bot's buttons carry, and what stale or forged buttons carry.
callback_data = st.one_of(
    st.sampled_from(["do:book", "do:human", "do:topics", "staff:close", "faq:", "do:", ":", "faq:faq:scars"]),
    st.sampled_from(FAQ_IDS).map(lambda i: "faq:" + i),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=20).map(lambda t: "faq:" + t),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=64).filter(lambda t: len(t.encode()) <= 64),
    # Telegram caps callback data at 64 bytes; longer data cannot come from a real button but costs nothing to try.
    st.text(string.printable, min_size=65, max_size=200),
)

# ======================================================================================
# Strategies: message content (Bot API objects with every required field)
# ======================================================================================

file_ids = st.text(string.ascii_letters + string.digits + "-_", min_size=12, max_size=40)


def _file(extra: dict[str, Any]) -> st.SearchStrategy[JSONDict]:
    return st.fixed_dictionaries({"file_id": file_ids, "file_unique_id": file_ids.map(lambda f: f[:16]), **extra})


dims = st.integers(1, 4096)
durations = st.integers(0, 36_000)
photo_sizes = _file({"width": dims, "height": dims}).map(lambda p: {**p, "file_size": 1234})
stickers = _file(
    {
        "type": st.sampled_from(["regular", "mask", "custom_emoji"]),
        "width": st.just(512),
        "height": st.just(512),
        "is_animated": st.booleans(),
        "is_video": st.booleans(),
        "emoji": st.sampled_from(["\U0001f600", "\u2764\ufe0f", "\U0001f44d\U0001f3fd"]),
    }
)
documents = _file(
    {
        "file_name": st.one_of(names, st.sampled_from(["scan.pdf", "..", "a" * 255 + ".exe", "\u202egnp.exe", "photo.heic"])),
        "mime_type": st.sampled_from(["application/pdf", "image/heic", "application/octet-stream", "text/html"]),
    }
)
locations = st.fixed_dictionaries(
    {"latitude": st.floats(-90, 90, allow_nan=False), "longitude": st.floats(-180, 180, allow_nan=False)},
    optional={
        "horizontal_accuracy": st.floats(0, 1500, allow_nan=False),
        "live_period": st.sampled_from([60, 900, 86_400, 0x7FFFFFFF]),
        "heading": st.integers(1, 360),
    },
)
SELF = "<the sender's own user id>"  # resolved when the update is built
contacts = st.fixed_dictionaries(
    {"phone_number": st.one_of(st.sampled_from(["+82 10-1234-5678", "821012345678", "+1 555 0100", "12", "+000"]), short_texts), "first_name": names},
    optional={"last_name": names, "user_id": st.one_of(st.just(SELF), st.integers(1, 2**40)), "vcard": short_texts},
)
poll_options = st.lists(
    st.fixed_dictionaries({"text": short_texts.map(lambda t: t[:100] or "-"), "voter_count": st.integers(0, 10**6), "persistent_id": file_ids}),
    min_size=2,
    max_size=10,
)
polls = st.fixed_dictionaries(
    {
        "id": st.integers(1, 2**62).map(str),
        "question": short_texts.map(lambda t: t[:300] or "?"),
        "options": poll_options,
        "total_voter_count": st.integers(0, 10**6),
        "is_closed": st.booleans(),
        "is_anonymous": st.booleans(),
        "type": st.sampled_from(["regular", "quiz"]),
        "allows_multiple_answers": st.booleans(),
        "allows_revoting": st.booleans(),  # required since Bot API 9.6
        "members_only": st.booleans(),  # required since Bot API 10.0
    },
    optional={"correct_option_ids": st.lists(st.integers(0, 1), min_size=1, max_size=2, unique=True), "open_period": st.integers(5, 600)},
)
dice = st.sampled_from(["\U0001f3b2", "\U0001f3af", "\U0001f3c0", "\u26bd", "\U0001f3b3", "\U0001f3b0"]).flatmap(
    lambda e: st.fixed_dictionaries(
        {"emoji": st.just(e), "value": st.integers(1, 64 if e == "\U0001f3b0" else 5 if e in ("\U0001f3c0", "\u26bd") else 6)}
    )
)

media_contents = st.one_of(
    st.fixed_dictionaries({"sticker": stickers}),
    st.fixed_dictionaries(
        {"photo": st.lists(photo_sizes, min_size=1, max_size=4)}, optional={"caption": captions, "has_media_spoiler": st.booleans()}
    ),
    st.fixed_dictionaries({"voice": _file({"duration": durations, "mime_type": st.just("audio/ogg")})}, optional={"caption": captions}),
    st.fixed_dictionaries({"video": _file({"width": dims, "height": dims, "duration": durations})}, optional={"caption": captions}),
    st.fixed_dictionaries({"video_note": _file({"length": st.integers(1, 640), "duration": st.integers(0, 60)})}),
    st.fixed_dictionaries({"audio": _file({"duration": durations, "title": names})}, optional={"caption": captions}),
    st.fixed_dictionaries({"document": documents}, optional={"caption": captions}),
    _file({"width": dims, "height": dims, "duration": durations}).map(
        lambda a: {"animation": a, "document": {k: a[k] for k in ("file_id", "file_unique_id")}}
    ),
    st.fixed_dictionaries({"location": locations}),
    st.fixed_dictionaries({"venue": st.fixed_dictionaries({"location": locations, "title": short_texts, "address": short_texts})}).map(
        lambda v: {**v, "location": v["venue"]["location"]}  # Telegram sends a venue with its location
    ),
    st.fixed_dictionaries({"contact": contacts}),
    st.fixed_dictionaries({"dice": dice}),
)
forward_origins = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.just("user"),
            "date": st.just(1_700_000_000),
            "sender_user": st.fixed_dictionaries({"id": st.integers(1, 2**40), "is_bot": st.booleans(), "first_name": names}),
        }
    ),
    st.fixed_dictionaries({"type": st.just("hidden_user"), "date": st.just(1_700_000_000), "sender_user_name": names}),
    st.fixed_dictionaries(
        {"type": st.just("channel"), "date": st.just(1_700_000_000), "chat": st.just(CHANNEL), "message_id": st.integers(1, 10**6)}
    ),
)
# Only forwarded: people cannot write polls or stories in a private chat with a bot, but can forward them.
forwarded_only = st.one_of(
    st.fixed_dictionaries({"poll": polls}),
    st.fixed_dictionaries({"story": st.fixed_dictionaries({"chat": st.just(CHANNEL), "id": st.integers(1, 10**6)})}),
)
# Unknown fields: what a future Bot API version may add (python-telegram-bot keeps them in api_kwargs).
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.floats(allow_nan=False, allow_infinity=False), short_texts),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), inner, max_size=3)),
    max_leaves=6,
)
future_keys = st.from_regex(r"future_[a-z_]{1,16}", fullmatch=True)
future_fields = st.dictionaries(future_keys, json_values, max_size=2)
future_content = st.dictionaries(future_keys, json_values, min_size=1, max_size=2)
PIN = "<a message of this chat>"  # resolved when the update is built
PIN_GONE = "<a message of this chat the bot cannot access>"  # an InaccessibleMessage (date 0)
pins = st.sampled_from([PIN, PIN_GONE]).map(lambda pin: {"pinned_message": pin})
private_service = st.one_of(
    pins,
    st.fixed_dictionaries(
        {"message_auto_delete_timer_changed": st.fixed_dictionaries({"message_auto_delete_time": st.sampled_from([0, 86_400, 604_800])})}
    ),
    st.fixed_dictionaries({"write_access_allowed": st.fixed_dictionaries({}, optional={"from_request": st.booleans(), "web_app_name": short_texts})}),
)
forum_service = st.one_of(
    st.fixed_dictionaries({"forum_topic_created": st.fixed_dictionaries({"name": names, "icon_color": st.sampled_from([7322096, 16766590])})}),
    st.fixed_dictionaries({"forum_topic_edited": st.fixed_dictionaries({}, optional={"name": names, "icon_custom_emoji_id": st.just("")})}),
    st.just({"forum_topic_closed": {}}),
    st.just({"forum_topic_reopened": {}}),
    st.just({"general_forum_topic_hidden": {}}),
    st.just({"general_forum_topic_unhidden": {}}),
    pins,
    st.just({"video_chat_started": {}}),
    st.fixed_dictionaries({"video_chat_ended": st.fixed_dictionaries({"duration": durations})}),
    st.fixed_dictionaries({"new_chat_title": names}),
    st.fixed_dictionaries({"boost_added": st.fixed_dictionaries({"boost_count": st.integers(1, 10)})}),
    st.fixed_dictionaries(
        {
            "new_chat_members": st.lists(
                st.fixed_dictionaries({"id": st.sampled_from(STRANGERS), "is_bot": st.just(False), "first_name": names}), min_size=1, max_size=3
            )
        }
    ),
    st.fixed_dictionaries(
        {"left_chat_member": st.fixed_dictionaries({"id": st.sampled_from(STRANGERS), "is_bot": st.just(False), "first_name": names})}
    ),
)

# What a patient can send; probes send one of these, never a service message or unknown content.
probe_contents = st.one_of(
    patient_texts.map(lambda t: {"text": t}),
    patient_texts.map(lambda t: {"text": t}),
    commands.map(lambda t: {"text": telegram_trimmed(t)}),
    media_contents,
    media_contents,
    st.tuples(st.one_of(forwarded_only, forwarded_only, patient_texts.map(lambda t: {"text": t}), media_contents), forward_origins).map(
        lambda t: {**t[0], "forward_origin": t[1]}
    ),
)
booking_answers = [
    "/human",
    "talk to a human please",
    "/book",
    "/cancel",
    "/end",
    "Ana Kim",
    "010 1234 5678",
    "/forget",
    *(
        TEXTS[k]
        for k in ("button_forget_yes", "button_skip", "button_consent_yes", "button_confirm", "button_edit", "button_cancel", "button_edit_note")
    ),
]
patient_contents = st.one_of(
    patient_texts.map(lambda t: {"text": t}),
    commands.map(lambda t: {"text": telegram_trimmed(t)}),
    st.sampled_from(booking_answers).map(lambda t: {"text": t}),
    media_contents,
    media_contents,
    st.tuples(st.one_of(forwarded_only, patient_texts.map(lambda t: {"text": t}), media_contents), forward_origins).map(
        lambda t: {**t[0], "forward_origin": t[1]}
    ),
    private_service,
    future_content,  # content of a kind this python-telegram-bot does not know
)
staff_contents = st.one_of(
    staff_texts.map(lambda t: {"text": t}),
    staff_texts.map(lambda t: {"text": t}),
    st.sampled_from(
        ["/close", "/open", "/note she called", "/note", "/close@test_bot", "/CLOSE", "/open@other_bot", "/closed", "/ close", "/start"]
    ).map(lambda t: {"text": t}),
    media_contents,
    st.fixed_dictionaries({"poll": polls}),  # staff can post polls in a group
    forum_service,
)

# ======================================================================================
# Strategies: the steps of a batch ("specs", turned into updates inside the bot's loop)
# ======================================================================================

picks = st.integers(0, 10_000)  # "one of the existing ...": resolved modulo what exists when the update is built


def patient_steps(cast: int) -> st.SearchStrategy[JSONDict]:
    """Steps of the batch's patients, by their index in the cast."""
    who = st.integers(0, cast - 1)
    return st.one_of(
        st.fixed_dictionaries(
            {"kind": st.just("patient_message"), "patient": who, "content": patient_contents},
            optional={"name": names, "username": usernames, "reply_to": picks, "extra": future_fields},
        ),
        st.fixed_dictionaries(
            {"kind": st.just("patient_message"), "patient": who, "content": patient_contents},
            optional={"name": names, "username": usernames, "reply_to": picks, "extra": future_fields},
        ),
        st.fixed_dictionaries({"kind": st.just("album"), "patient": who, "size": st.integers(2, 5), "caption": st.one_of(st.none(), captions)}),
        st.fixed_dictionaries({"kind": st.just("patient_edit"), "patient": who, "pick": picks, "text": patient_texts, "location": locations}),
        st.fixed_dictionaries(
            {
                "kind": st.just("patient_press"),
                "patient": who,
                "pick": picks,
                "data": st.one_of(st.none(), st.none(), callback_data),  # None: the data of one of the bot's real buttons
                "message": st.sampled_from(["real", "real", "unknown", "inaccessible", "inline"]),
                "stale": st.booleans(),
            }
        ),
        st.fixed_dictionaries({"kind": st.just("patient_reaction"), "patient": who, "pick": picks, "emoji": emojis, "paid": st.booleans()}),
        st.fixed_dictionaries({"kind": st.just("patient_blocks"), "patient": who, "blocked": st.booleans()}),
        st.fixed_dictionaries({"kind": st.just("business_message"), "patient": who, "text": patient_texts}),
    )


where_in_staff = st.one_of(
    st.tuples(st.just("topic"), picks),
    st.tuples(st.just("topic"), picks),
    st.tuples(st.just("general"), st.just(0)),
    st.tuples(st.just("unknown"), st.integers(2, 10**6)),
    st.tuples(st.just("new_topic"), names),
)
staff_senders = st.sampled_from(["staff", "staff", "staff", "staff2", "anonymous", "other_bot", "telegram"])

other_steps = st.one_of(
    st.fixed_dictionaries(
        {"kind": st.just("staff_message"), "where": where_in_staff, "sender": staff_senders, "content": staff_contents},
        optional={"extra": future_fields, "reply_to": picks},
    ),
    st.fixed_dictionaries(
        {"kind": st.just("staff_message"), "where": st.tuples(st.just("topic"), picks), "sender": st.just("staff"), "content": staff_contents}
    ),
    st.fixed_dictionaries({"kind": st.just("staff_edit"), "pick": picks, "text": staff_texts}),
    st.fixed_dictionaries(
        {
            "kind": st.just("staff_press"),
            "pick": picks,
            "data": st.one_of(st.just("staff:close"), st.just("staff:close"), callback_data),
            "sender": st.sampled_from(STAFF_USERS),
        }
    ),
    st.fixed_dictionaries({"kind": st.just("staff_reaction"), "pick": picks, "emoji": emojis, "anonymous": st.booleans()}),
    st.fixed_dictionaries(
        {
            "kind": st.just("member_update"),
            "chat": st.sampled_from(["staff", "other"]),
            "who": st.sampled_from(["bot", "user"]),
            "status": st.sampled_from(["member", "left", "kicked", "administrator", "creator"]),
        }
    ),
    st.fixed_dictionaries({"kind": st.just("join_request"), "chat": st.sampled_from(["staff", "other"]), "bio": st.one_of(st.none(), short_texts)}),
    st.fixed_dictionaries(
        {
            "kind": st.just("group_message"),
            "group": st.sampled_from(sorted(OTHER_GROUPS)),
            "thread": st.one_of(st.none(), picks),
            "content": staff_contents,
        }
    ),
    st.fixed_dictionaries({"kind": st.just("channel_post"), "content": st.one_of(staff_contents, st.fixed_dictionaries({"text": staff_texts}))}),
    st.fixed_dictionaries({"kind": st.just("edited_channel_post"), "pick": picks, "text": staff_texts}),
    st.fixed_dictionaries(
        {
            "kind": st.just("inline_query"),
            "query": short_texts.map(lambda t: t[:256]),
            "chat_type": st.sampled_from(["sender", "private", "group", "supergroup", "channel", None]),
        }
    ),
    st.fixed_dictionaries({"kind": st.just("chosen_inline_result"), "result_id": short_texts, "query": short_texts}),
    st.fixed_dictionaries({"kind": st.just("poll"), "poll": polls}),
    st.fixed_dictionaries(
        {
            "kind": st.just("poll_answer"),
            "poll_id": st.integers(1, 2**62).map(str),
            "options": st.lists(st.integers(0, 9), max_size=3, unique=True),
            "by_chat": st.booleans(),
        }
    ),
    st.fixed_dictionaries(
        {
            "kind": st.just("reaction_count"),
            "chat": st.sampled_from(["staff", "channel", "other"]),
            "pick": picks,
            "emoji": emojis,
            "count": st.integers(0, 10**6),
        }
    ),
    st.fixed_dictionaries({"kind": st.just("chat_boost"), "removed": st.booleans(), "chat": st.sampled_from(["staff", "channel"])}),
    st.fixed_dictionaries(
        {"kind": st.just("unknown_update"), "name": st.from_regex(r"future_update_[a-z]{1,10}", fullmatch=True), "value": json_values}
    ),
    st.fixed_dictionaries({"kind": st.just("staff_deletes_topic"), "pick": picks}),
    st.fixed_dictionaries({"kind": st.just("staff_closes_topic"), "pick": picks, "closed": st.booleans()}),
    st.fixed_dictionaries({"kind": st.just("flood"), "count": st.integers(16, 20)}),  # a new patient sends a burst
    st.just({"kind": "barrier"}),  # let the bot catch up mid-batch, so later steps see new topics and buttons
)
probe_steps = st.one_of(
    st.fixed_dictionaries(
        {"kind": st.just("probe"), "content": probe_contents}, optional={"name": names, "username": usernames, "extra": future_fields}
    ),
    st.fixed_dictionaries(
        {"kind": st.just("probe"), "content": probe_contents}, optional={"name": names, "username": usernames, "extra": future_fields}
    ),
    st.fixed_dictionaries({"kind": st.just("probe_press"), "data": callback_data, "message": st.sampled_from(["unknown", "inaccessible"])}),
)


HANDOFF_OPENERS = [
    {"text": "/human"},
    {"text": "talk to a human please"},
    {"text": "my face is bleeding and swollen"},
    {"text": "/human@test_bot now"},
]


@st.composite
def handoff_scenes(draw: st.DrawFn, cast: int) -> list[JSONDict]:
    """A patient asks for staff, then staff and patient talk in the patient's topic (and may close it)."""
    actor = draw(st.integers(0, cast - 1))
    scene = [{"kind": "patient_message", "patient": actor, "content": draw(st.sampled_from(HANDOFF_OPENERS))}, {"kind": "barrier"}]
    in_topic = st.one_of(staff_contents, staff_contents, st.fixed_dictionaries({"poll": polls}))  # staff also post polls and quizzes
    staff = st.fixed_dictionaries(
        {
            "kind": st.just("staff_message"),
            "where": st.just(("patient", actor)),
            "sender": st.sampled_from(["staff", "staff", "staff2", "anonymous"]),
            "content": in_topic,
        }
    )
    close = st.just({"kind": "staff_press", "pick": 0, "data": "staff:close", "sender": STAFF_USERS[0], "patient": actor})  # the card's button
    own = patient_steps(cast).map(lambda step: {**step, "patient": actor})
    # What is awkward to relay: service messages (pins, timers...), forwarded polls and stories.
    forwarded = st.tuples(forwarded_only, forward_origins).map(lambda t: {**t[0], "forward_origin": t[1]})
    awkward = st.one_of(private_service, forwarded).map(lambda content: {"kind": "patient_message", "patient": actor, "content": content})
    talk = draw(st.lists(st.one_of(staff, staff, close, own, awkward), min_size=1, max_size=6))
    # Sometimes staff delete the topic (Telegram tells the bot nothing), the patient asks to be
    # forgotten, or both; drawn on their own, so that runs do not go without them.
    if draw(st.integers(0, 3)) == 0:
        talk.insert(draw(st.integers(0, len(talk))), {"kind": "staff_deletes_topic", "pick": 0, "patient": actor})
    if draw(st.integers(0, 3)) == 0:
        at = draw(st.integers(0, len(talk)))
        talk[at:at] = [{"kind": "patient_message", "patient": actor, "content": {"text": text}} for text in ("/forget", TEXTS["button_forget_yes"])]
    return scene + talk


@st.composite
def batches(draw: st.DrawFn) -> JSONDict:
    """The batch's cast of patients (None: someone new; a number: one of the patients of earlier batches) and its steps."""
    cast = draw(st.lists(st.one_of(st.none(), picks), min_size=1, max_size=3))
    steps = draw(st.lists(st.one_of(patient_steps(len(cast)), patient_steps(len(cast)), other_steps), min_size=BATCH[0], max_size=BATCH[1]))
    # Scenes and probes are drawn on their own and put in at random places: drawn as one more
    # alternative of a list's elements, Hypothesis would seldom pick the bigger ones.
    for scene in draw(st.lists(handoff_scenes(len(cast)), min_size=1, max_size=3)):
        at = draw(st.integers(0, len(steps)))
        steps[at:at] = scene
    for probe in draw(st.lists(probe_steps, min_size=1, max_size=3)):
        steps.insert(draw(st.integers(0, len(steps))), probe)
    return {"cast": cast, "steps": steps}


# ======================================================================================
# Turning steps into updates and checking what the bot did (inside the bot's event loop)
# ======================================================================================


def _resolve(value: Any, resolver: dict[str, Any]) -> Any:
    if isinstance(value, str) and value in resolver:
        return resolver[value]
    if isinstance(value, dict):
        return {k: _resolve(v, resolver) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, resolver) for v in value]
    return value


def _pick(items: list[T], index: int) -> T | None:
    """One of ``items``, newest first (Hypothesis favours small numbers)."""
    return items[-1 - index % len(items)] if items else None


def _shorten(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= 60 else f"{value[:40]!s}...({len(value)} chars)"
    if isinstance(value, dict):
        if "reply_to_message" in value:
            value = {**value, "reply_to_message": {"message_id": value["reply_to_message"].get("message_id"), "...": "..."}}
        return {k: _shorten(v) for k, v in value.items() if k != "reply_markup"}
    if isinstance(value, list):
        return [_shorten(v) for v in value[:4]] + ([f"...({len(value)} items)"] if len(value) > 4 else [])
    return value


def describe(updates: list[JSONDict]) -> str:
    return "\n".join(json.dumps(_shorten(u), ensure_ascii=True) for u in updates)


def update_kind(update: JSONDict) -> str:
    kind = next(k for k in update if k != "update_id")
    body = update[kind]
    if kind in ("message", "edited_message", "channel_post", "edited_channel_post", "business_message") and isinstance(body, dict):
        chat_type = body.get("chat", {}).get("type", "?")
        content = next((k for k in body if k not in _ENVELOPE and not (k == "document" and "animation" in body)), "other")
        return f"{kind}:{chat_type}:{content}"
    return kind


PINNABLE = (
    "text",
    "photo",
    "sticker",
    "voice",
    "video",
    "video_note",
    "audio",
    "document",
    "animation",
    "location",
    "venue",
    "contact",
    "dice",
    "poll",
    "story",
)
_ENVELOPE = {
    "message_id",
    "message_thread_id",
    "from",
    "sender_chat",
    "chat",
    "date",
    "edit_date",
    "is_topic_message",
    "reply_to_message",
    "forward_origin",
    "media_group_id",
    "entities",
    "caption",
    "caption_entities",
    "has_media_spoiler",
    "business_connection_id",
    "is_automatic_forward",
}


class World:
    """The running bot, the fake server and what the batches built so far (used only on the bot's loop)."""

    def __init__(self, api: FakeBotApi, harness: BotHarness, set_sentinel: Any) -> None:
        self.api = api
        self.harness = harness
        self.staff = api.staff_chat_id
        self.set_sentinel = set_sentinel
        self.next_probe = PROBE_BASE
        self.next_patient = PATIENT_BASE
        self.patients: list[int] = []  # every patient of every batch's cast
        self.cast: list[int] = []
        self.next_sentinel = SENTINEL_BASE
        self.messages: dict[int, list[JSONDict]] = {}  # messages users sent, by chat
        self.next_channel_id = 1
        self.next_album = 0
        self.stale_queries: set[str] = set()
        self.notes: list[str] = []
        self.deleted_threads: set[int] = set()
        self.blocked: set[int] = set()
        self.ever_blocked: set[int] = set()  # a send can meet the block of a patient who has unblocked since
        self.kinds: Counter[str] = Counter()
        self.call_cursor = 0
        self.by_update_id: dict[int, JSONDict] = {}
        self.by_message: dict[tuple[int, int], JSONDict] = {}  # (chat id, message id) -> the update that brought it
        self.judged: set[int] = set()
        self.answer_cursor = 0
        self.broken: str | None = None
        self.batches = 0
        self.failures: dict[str, tuple[int, list[str], list[JSONDict]]] = {}
        self.failure_counts: Counter[str] = Counter()
        self.now = int(time.time())

    # -- building updates ---------------------------------------------------------------
    def new_cast(self, cast: list[int | None]) -> None:
        self.cast = []
        for returning in cast:
            if returning is None or not self.patients:
                self.next_patient += 1
                self.patients.append(self.next_patient)
                self.cast.append(self.next_patient)
            else:
                self.cast.append(_pick(self.patients, returning))

    def _patient(self, step: JSONDict) -> int:
        return self.cast[step["patient"]]

    def build(self, step: JSONDict) -> list[JSONDict]:
        return getattr(self, "_build_" + step["kind"])(step)

    def _remember(self, update: JSONDict) -> JSONDict:
        for key in ("message", "channel_post"):
            message = update.get(key)
            if isinstance(message, dict):
                self.messages.setdefault(message["chat"]["id"], []).append(message)
        return update

    def _resolver(self, chat_id: int) -> dict[str, Any]:
        # Only messages with content can be pinned (not service messages).
        candidates = [m for m in self.api.sent_messages(chat_id) + self.messages.get(chat_id, []) if any(k in m for k in PINNABLE)]
        chat = {"id": chat_id, "type": "private"} if chat_id > 0 else self._group(chat_id) if chat_id != CHANNEL["id"] else CHANNEL
        gone = {"chat": chat, "message_id": candidates[0]["message_id"] if candidates else 1, "date": 0}
        pinned = copy.deepcopy(candidates[-1]) if candidates else {"text": "x", "message_id": 1, "date": 1, "chat": chat}
        pinned.pop("reply_to_message", None)
        return {SELF: chat_id, PIN: pinned, PIN_GONE: gone}

    def _unblock_if_writing(self, chat_id: int) -> list[JSONDict]:
        """A patient who blocked the bot unblocks it by writing to it (Telegram sends the member update first)."""
        if chat_id not in self.blocked:
            return []
        self.blocked.discard(chat_id)
        self.api.unblock(chat_id)
        return [self._private_member_update(chat_id, "kicked", "member")]

    def _private_member_update(self, chat_id: int, old: str, new: str) -> JSONDict:
        user = self.api.add_private_chat(chat_id)
        bot = self.api.bot_user
        chat = {"id": chat_id, "type": "private", "first_name": user["first_name"]}

        def member(status: str) -> JSONDict:
            return {"status": status, "user": bot, **({"until_date": 0} if status == "kicked" else {})}

        return {"my_chat_member": {"chat": chat, "from": user, "date": self.now, "old_chat_member": member(old), "new_chat_member": member(new)}}

    def _private(self, chat_id: int, step: JSONDict) -> JSONDict:
        content = _resolve(step["content"], self._resolver(chat_id))
        reply_to = None
        if "reply_to" in step:
            earlier = [m["message_id"] for m in self.api.sent_messages(chat_id) + self.messages.get(chat_id, [])]
            reply_to = _pick(earlier, step["reply_to"])
        fields = {**content, **step.get("extra", {})}
        update = self.api.private_message(chat_id, first_name=step.get("name"), username=step.get("username"), reply_to_message_id=reply_to, **fields)
        return self._remember(update)

    def _build_patient_message(self, step: JSONDict) -> list[JSONDict]:
        chat_id = self._patient(step)
        return [*self._unblock_if_writing(chat_id), self._private(chat_id, step)]

    def _build_probe(self, step: JSONDict) -> list[JSONDict]:
        self.next_probe += 1
        return [self._private(self.next_probe, step)]

    def _build_album(self, step: JSONDict) -> list[JSONDict]:
        chat_id = self._patient(step)
        self.next_album += 1
        group = str(13_000_000_000_000_000 + self.next_album)
        out = self._unblock_if_writing(chat_id)
        for index in range(step["size"]):
            photo = [{"file_id": f"album-{group}-{index}", "file_unique_id": f"a{group[-8:]}{index}", "width": 800, "height": 600}]
            fields: JSONDict = {"photo": photo, "media_group_id": group}
            if index == 0 and step["caption"]:
                fields["caption"] = step["caption"]
            out.append(self._remember(self.api.private_message(chat_id, **fields)))
        return out

    def _edit(self, chat_id: int, pick: int, text: str, location: JSONDict | None = None) -> list[JSONDict]:
        # Picked among the messages that can be edited, so every run edits in every kind of chat.
        editable = [m for m in self.messages.get(chat_id, []) if "text" in m or "location" in m or any(k in m for k in _CAPTIONED)]
        message = _pick(editable, pick)
        if message is None:
            return []
        if "text" in message:
            return [self.api.edited_message(chat_id, message["message_id"], text=text)]
        if "location" in message and "venue" not in message and location is not None:
            return [self.api.edited_message(chat_id, message["message_id"], location=location)]  # live location moving
        if any(k in message for k in _CAPTIONED):
            return [self.api.edited_message(chat_id, message["message_id"], caption=text[:1024])]
        return []  # stickers, dice, polls, service messages cannot be edited

    def _build_patient_edit(self, step: JSONDict) -> list[JSONDict]:
        return self._edit(self._patient(step), step["pick"], step["text"], step["location"])

    def _press(self, chat_id: int, data: str | None, message_kind: str, pick: int, from_user: int | None = None) -> JSONDict | None:
        with_buttons = [m for m in self.api.sent_messages(chat_id) if (m.get("reply_markup") or {}).get("inline_keyboard")]
        message = _pick(with_buttons, pick) if message_kind == "real" else None
        if data is None:
            if message is None:
                return None
            buttons = [b["callback_data"] for row in message["reply_markup"]["inline_keyboard"] for b in row if "callback_data" in b]
            data = _pick(buttons, pick)
            if data is None:
                return None
        message_id = message["message_id"] if message is not None else 900_000 + pick  # a message long gone
        if message_kind == "inline":  # a button of an inline-mode message: no chat, no message
            user = self.api.add_private_chat(chat_id) if from_user is None else {"id": from_user, "is_bot": False, "first_name": "Staff"}
            query = {"id": self.api.new_callback_query_id(), "from": user, "inline_message_id": f"AgAAA{pick}", "chat_instance": "-42", "data": data}
            return {"callback_query": query}
        update = self.api.callback_query(chat_id, data, message_id, from_user_id=from_user)
        if message_kind == "inaccessible":
            update["callback_query"]["message"] = {"chat": update["callback_query"]["message"]["chat"], "message_id": message_id, "date": 0}
        return update

    def _build_patient_press(self, step: JSONDict) -> list[JSONDict]:
        chat_id = self._patient(step)
        self.api.add_private_chat(chat_id)
        update = self._press(chat_id, step["data"], step["message"], step["pick"])
        if update is None:
            return []
        if step["stale"]:  # pressed long ago: Telegram no longer accepts an answer
            stale_id = f"9{len(self.stale_queries):018d}"
            update["callback_query"]["id"] = stale_id
            self.stale_queries.add(stale_id)
        return [*self._unblock_if_writing(chat_id), update]

    def _build_probe_press(self, step: JSONDict) -> list[JSONDict]:
        self.next_probe += 1
        self.api.add_private_chat(self.next_probe)
        update = self._press(self.next_probe, step["data"], step["message"], 0)
        assert update is not None
        return [update]

    def _reaction(self, chat: JSONDict, message_id: int, emoji: str, actor: JSONDict) -> JSONDict:
        return {
            "message_reaction": {
                "chat": chat,
                "message_id": message_id,
                "date": self.now,
                "old_reaction": [],
                "new_reaction": [{"type": "emoji", "emoji": emoji}],
                **actor,
            }
        }

    def _build_patient_reaction(self, step: JSONDict) -> list[JSONDict]:
        chat_id = self._patient(step)
        user = self.api.add_private_chat(chat_id)
        target = _pick(self.api.sent_messages(chat_id) + self.messages.get(chat_id, []), step["pick"])
        if target is None:
            return []
        update = self._reaction(
            {"id": chat_id, "type": "private", "first_name": user["first_name"]}, target["message_id"], step["emoji"], {"user": user}
        )
        if step["paid"]:
            update["message_reaction"]["new_reaction"] = [{"type": "paid"}]
        return [update]

    def _build_patient_blocks(self, step: JSONDict) -> list[JSONDict]:
        chat_id = self._patient(step)
        if step["blocked"] == (chat_id in self.blocked):
            return []
        if step["blocked"]:
            self.blocked.add(chat_id)
            self.ever_blocked.add(chat_id)
            self.api.block(chat_id)
            return [self._private_member_update(chat_id, "member", "kicked")]
        return self._unblock_if_writing(chat_id)

    def _build_business_message(self, step: JSONDict) -> list[JSONDict]:
        # A message in a chat of a business account the bot manages: a private chat, but not with the bot.
        user = {"id": self._patient(step), "is_bot": False, "first_name": "Customer"}
        chat = {"id": self._patient(step), "type": "private", "first_name": "Customer"}
        message = {
            "message_id": 1 + sum(self.kinds.values()),
            "from": user,
            "chat": chat,
            "date": self.now,
            "text": step["text"],
            "business_connection_id": "bc-1",
        }
        return [{"business_message": message}]

    def _build_flood(self, step: JSONDict) -> list[JSONDict]:
        self.next_patient += 1
        chat_id = self.next_patient
        out = []
        for index in range(step["count"]):
            out.append(self._remember(self.api.private_text(chat_id, f"are you there? {index}")))
        return out

    # -- staff group ----------------------------------------------------------------------
    def _topics(self) -> list[int]:
        return sorted(t for t, topic in self.api.topics(self.staff).items() if not topic["deleted"])

    def _group(self, chat_id: int) -> JSONDict:
        if chat_id == self.staff:
            return {"id": chat_id, "title": "Staff", "type": "supergroup", "is_forum": True}
        return {"id": chat_id, "title": "Another group", "type": "supergroup", "is_forum": OTHER_GROUPS[chat_id]}

    def _sender_fields(self, sender: str, chat_id: int) -> tuple[int, JSONDict]:
        if sender == "anonymous":
            return ANONYMOUS_ADMIN["id"], {"from": ANONYMOUS_ADMIN, "sender_chat": self._group(chat_id)}
        if sender == "other_bot":
            return OTHER_BOT["id"], {"from": OTHER_BOT}
        if sender == "telegram":  # a post of the linked channel, forwarded automatically
            return TELEGRAM_SERVICE["id"], {"from": TELEGRAM_SERVICE, "sender_chat": CHANNEL, "is_automatic_forward": True}
        return (STAFF_USERS[1] if sender == "staff2" else STAFF_USERS[0]), {}

    def _build_staff_message(self, step: JSONDict) -> list[JSONDict]:
        place, value = step["where"]
        thread: int | None = None
        out: list[JSONDict] = []
        if place == "topic":
            thread = _pick(self._topics(), value)
        elif place == "patient":  # the topic of this patient's handoff, if it has one
            try:
                thread = self.harness.topic_of(self.cast[value])
            except AssertionError:
                thread = None
            if thread in self.deleted_threads:
                return []  # nobody can write in a deleted topic
        elif place == "unknown":
            thread = value
        elif place == "new_topic":  # staff open a topic of their own
            thread = self.api.create_topic(self.staff, value[:128])
        if step["sender"] == "telegram":
            thread = None  # automatic forwards land in the General topic
        user_id, sender = self._sender_fields(step["sender"], self.staff)
        content = _resolve(step["content"], self._resolver(self.staff))
        if "pinned_message" in content and isinstance(content["pinned_message"], dict):
            content["pinned_message"].pop("reply_to_message", None)
        reply_to = None
        if "reply_to" in step:
            reply_to = _pick([m["message_id"] for m in self.api.sent_messages(self.staff, thread)], step["reply_to"])
        fields = {**sender, **content, **step.get("extra", {})}
        text = fields.pop("text", None)
        update = self.api.group_message(self.staff, text, thread_id=thread, from_user_id=user_id, reply_to_message_id=reply_to, **fields)
        out.append(self._remember(update))
        return out

    def _build_staff_edit(self, step: JSONDict) -> list[JSONDict]:
        return self._edit(self.staff, step["pick"], step["text"])

    def _build_staff_press(self, step: JSONDict) -> list[JSONDict]:
        live = set(self._topics())
        if "patient" in step:  # the card of this patient's topic
            try:
                live &= {self.harness.topic_of(self.cast[step["patient"]])}
            except AssertionError:
                return []
        cards = [m for m in self.api.sent_messages(self.staff) if m.get("reply_markup") and m.get("message_thread_id") in live]
        card = _pick(cards, step["pick"])
        if card is None:
            return []
        return [self.api.callback_query(self.staff, step["data"], card["message_id"], from_user_id=step["sender"])]

    def _build_staff_reaction(self, step: JSONDict) -> list[JSONDict]:
        target = _pick(self.api.sent_messages(self.staff) + self.messages.get(self.staff, []), step["pick"])
        if target is None:
            return []
        actor = (
            {"actor_chat": self._group(self.staff)} if step["anonymous"] else {"user": {"id": STAFF_USERS[0], "is_bot": False, "first_name": "Staff"}}
        )
        return [self._reaction(self._group(self.staff), target["message_id"], step["emoji"], actor)]

    def _build_member_update(self, step: JSONDict) -> list[JSONDict]:
        chat = self._group(self.staff if step["chat"] == "staff" else min(OTHER_GROUPS))
        user = self.api.bot_user if step["who"] == "bot" else {"id": STRANGERS[0], "is_bot": False, "first_name": "New"}
        status = step["status"]
        new: JSONDict = {"status": status, "user": user}
        if status == "kicked":
            new["until_date"] = 0
        elif status == "creator":
            new["is_anonymous"] = False
        elif status == "administrator":
            new.update(ADMIN_RIGHTS)
        body = {
            "chat": chat,
            "from": {"id": STAFF_USERS[0], "is_bot": False, "first_name": "Staff"},
            "date": self.now,
            "old_chat_member": {"status": "member" if status == "left" else "left", "user": user},
            "new_chat_member": new,
        }
        return [{"my_chat_member" if step["who"] == "bot" else "chat_member": body}]

    def _build_join_request(self, step: JSONDict) -> list[JSONDict]:
        chat = self._group(self.staff if step["chat"] == "staff" else min(OTHER_GROUPS))
        body: JSONDict = {
            "chat": chat,
            "from": {"id": STRANGERS[1], "is_bot": False, "first_name": "Curious"},
            "user_chat_id": STRANGERS[1],
            "date": self.now,
        }
        if step["bio"]:
            body["bio"] = step["bio"]
        return [{"chat_join_request": body}]

    def _build_staff_deletes_topic(self, step: JSONDict) -> list[JSONDict]:
        thread = _pick(self._topics(), step["pick"])
        if "patient" in step:  # this patient's topic
            try:
                thread = self.harness.topic_of(self.cast[step["patient"]])
            except AssertionError:
                return []
            if thread not in self._topics():
                return []
        if thread is not None:
            self.api.delete_topic(self.staff, thread)
            self.deleted_threads.add(thread)
            self.notes.append(f"staff deleted topic {thread}")
        return []

    def _build_staff_closes_topic(self, step: JSONDict) -> list[JSONDict]:
        thread = _pick(self._topics(), step["pick"])
        if thread is not None:
            self.api.close_topic(self.staff, thread, step["closed"])
            self.notes.append(f"staff {'closed' if step['closed'] else 'reopened'} topic {thread}")
        return []

    # -- elsewhere ----------------------------------------------------------------------
    def _build_group_message(self, step: JSONDict) -> list[JSONDict]:
        group = step["group"]
        thread = None
        if OTHER_GROUPS[group] and step["thread"] is not None:
            thread = _pick(self._topics(), step["thread"]) or step["thread"]  # the same ids as staff topics
        content = _resolve(step["content"], self._resolver(group))
        text = content.pop("text", None)
        return [self._remember(self.api.group_message(group, text, thread_id=thread, from_user_id=STRANGERS[2], **content))]

    def _build_channel_post(self, step: JSONDict) -> list[JSONDict]:
        content = _resolve(step["content"], self._resolver(CHANNEL["id"]))
        content = {k: v for k, v in content.items() if not k.startswith(("forum_", "general_forum_", "new_chat_members", "left_chat_member"))}
        if not content:
            content = {"text": "news"}
        message_id = self.next_channel_id
        self.next_channel_id += 1
        message = {"message_id": message_id, "sender_chat": CHANNEL, "chat": CHANNEL, "date": self.now, **content}
        return [self._remember({"channel_post": message})]

    def _build_edited_channel_post(self, step: JSONDict) -> list[JSONDict]:
        posts = [m for m in self.messages.get(CHANNEL["id"], []) if "text" in m]
        post = _pick(posts, step["pick"])
        if post is None:  # nothing to edit yet: post first, so that every run sees an edited channel post
            [created] = self._build_channel_post({"content": {"text": "news"}})
            return [created, {"edited_channel_post": {**created["channel_post"], "text": step["text"], "edit_date": self.now}}]
        return [{"edited_channel_post": {**post, "text": step["text"], "edit_date": self.now}}]

    def _stranger(self) -> JSONDict:
        return {"id": STRANGERS[0], "is_bot": False, "first_name": "Stranger", "language_code": "ko"}

    def _build_inline_query(self, step: JSONDict) -> list[JSONDict]:
        body = {"id": str(10**15 + sum(self.kinds.values())), "from": self._stranger(), "query": step["query"], "offset": ""}
        if step["chat_type"]:
            body["chat_type"] = step["chat_type"]
        return [{"inline_query": body}]

    def _build_chosen_inline_result(self, step: JSONDict) -> list[JSONDict]:
        return [{"chosen_inline_result": {"result_id": step["result_id"][:64] or "r", "from": self._stranger(), "query": step["query"]}}]

    def _build_poll(self, step: JSONDict) -> list[JSONDict]:
        return [{"poll": step["poll"]}]

    def _build_poll_answer(self, step: JSONDict) -> list[JSONDict]:
        voter = (
            {"voter_chat": CHANNEL, "user": {"id": 136817688, "is_bot": True, "first_name": "Channel"}}
            if step["by_chat"]
            else {"user": self._stranger()}
        )
        persistent = [f"opt-{option}" for option in step["options"]]
        return [{"poll_answer": {"poll_id": step["poll_id"], "option_ids": step["options"], "option_persistent_ids": persistent, **voter}}]

    def _build_reaction_count(self, step: JSONDict) -> list[JSONDict]:
        chat_id = {"staff": self.staff, "channel": CHANNEL["id"], "other": min(OTHER_GROUPS)}[step["chat"]]
        chat = CHANNEL if chat_id == CHANNEL["id"] else self._group(chat_id)
        target = _pick(self.messages.get(chat_id, []), step["pick"])
        message_id = target["message_id"] if target else 1
        reactions = [{"type": {"type": "emoji", "emoji": step["emoji"]}, "total_count": step["count"]}]
        return [{"message_reaction_count": {"chat": chat, "message_id": message_id, "date": self.now, "reactions": reactions}}]

    def _build_chat_boost(self, step: JSONDict) -> list[JSONDict]:
        chat = CHANNEL if step["chat"] == "channel" else self._group(self.staff)
        source = {"source": "premium", "user": self._stranger()}
        if step["removed"]:
            return [{"removed_chat_boost": {"chat": chat, "boost_id": "b1", "remove_date": self.now, "source": source}}]
        boost = {"boost_id": "b1", "add_date": self.now, "expiration_date": self.now + 86_400 * 30, "source": source}
        return [{"chat_boost": {"chat": chat, "boost": boost}}]

    def _build_unknown_update(self, step: JSONDict) -> list[JSONDict]:
        return [{step["name"]: step["value"] if isinstance(step["value"], dict) else {"value": step["value"]}}]

    # -- one batch ------------------------------------------------------------------------
    async def barrier(self) -> None:
        self.next_sentinel += 1
        self.set_sentinel(self.next_sentinel)
        await self.harness.barrier()

    async def play(self, batch: JSONDict) -> tuple[list[str], list[JSONDict]]:
        """Push the batch, wait for the bot, and return what went wrong and the updates pushed."""
        self.new_cast(batch["cast"])
        steps = batch["steps"]
        problems: list[str] = []
        pushed: list[JSONDict] = []
        probes: list[int] = []
        calls_before = len(self.api.calls)
        for step in steps:
            if step["kind"] == "barrier":
                pushed.append({"~": "the test waits for the bot to catch up"})
                try:
                    if not await self.barrier_unless_runaway(calls_before, _updates_in(pushed)):
                        return [self.runaway(calls_before, _updates_in(pushed))], pushed
                except AssertionError as exc:
                    self.broken = "stopped"
                    return [f"the bot stopped answering (in the middle of the batch): {exc}"], pushed
                continue
            built = self.build(step)
            pushed += [{"~": note} for note in self.notes]  # what happened besides updates
            self.notes.clear()
            for update in built:
                try:
                    Update.de_json(copy.deepcopy({"update_id": 1, **update}), None)
                except Exception as exc:  # the generator, not the bot, is wrong
                    raise AssertionError(f"test bug: python-telegram-bot cannot read a generated update ({exc!r}): {describe([update])}") from exc
                update["update_id"] = self.api.push_update(update)
                self.remember_pushed(update)
                pushed.append(update)
                self.kinds[update_kind(update)] += 1
            if step["kind"] in ("probe", "probe_press"):
                probes.append(self.next_probe)
        try:
            if not await self.barrier_unless_runaway(calls_before, _updates_in(pushed)):
                return [self.runaway(calls_before, _updates_in(pushed))], pushed
        except AssertionError as exc:
            problems.append(f"the bot stopped answering: a fresh patient's 'hello' got no reply: {exc}")
        for chat_id in probes:
            try:
                await self.api.wait_for_message(chat_id, timeout=5.0)
            except AssertionError:
                asked = [u for u in pushed if _chat_of(u) == chat_id]
                problems.append(f"silent: patient {chat_id} got no reply to {describe(asked)}")
        application = self.harness.application
        polling = getattr(self.harness, "webhook_server", None) is None  # in webhook mode bot.adapters.telegram.webhook receives, not the Updater
        if application is None or not application.running or (polling and (application.updater is None or not application.updater.running)):
            problems.append("the Application or its Updater stopped running")
        if len(self.api.calls) - calls_before > _runaway_limit(_updates_in(pushed)):
            return [*problems, self.runaway(calls_before, _updates_in(pushed))], pushed
        problems += self.check_calls()
        if any(p.startswith(("the bot stopped", "the Application")) for p in problems):
            self.broken = "stopped"
        return problems, pushed

    async def last_check(self) -> list[str]:
        """Sends that went out after the last batch's checks."""
        await self.barrier()
        return self.check_calls()

    async def barrier_unless_runaway(self, calls_before: int, updates: int) -> bool:
        """The barrier; False (at once) if the bot makes requests beyond all reason meanwhile."""
        limit = calls_before + _runaway_limit(updates)
        barrier = asyncio.ensure_future(self.barrier())
        watchers = [asyncio.ensure_future(self.api.wait_for(m, after=limit, answered=False, timeout=600)) for m in ("sendMessage", "copyMessage")]
        await asyncio.wait([barrier, *watchers], return_when=asyncio.FIRST_COMPLETED)
        answered = barrier.done()
        for task in (barrier, *watchers):
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        if not answered:
            await asyncio.gather(barrier, return_exceptions=True)
            return False
        barrier.result()  # AssertionError: not answered
        return True

    def runaway(self, calls_before: int, updates: int) -> str:
        self.broken = "runaway"
        calls = self.api.calls[calls_before:]
        self.call_cursor = len(self.api.calls)  # not worth judging one by one
        key, times = Counter(_call_key(c) for c in calls).most_common(1)[0]
        return f"runaway: the bot made {len(calls)} requests while handling {updates} updates; {times} x {key}"

    def record(self, problems: list[str], pushed: list[JSONDict], *, batch: bool = True) -> None:
        """Keep the first batch showing each kind of problem."""
        self.batches += batch
        for problem in problems:
            kind = re.sub(r"\d+", "N", problem.split("; params=")[0].split(": {")[0])[:120]
            if kind not in self.failures:
                self.failures[kind] = (self.batches, problems, pushed)
            self.failure_counts[kind] += 1

    def report(self) -> str:
        lines = [f"{len(self.failures)} kind(s) of problem in {self.batches} batches ({sum(self.kinds.values())} updates):"]
        lines += [f"  {self.failure_counts[kind]} x {kind}" for kind in self.failures]
        shown: set[int] = set()
        for kind, (batch, problems, pushed) in self.failures.items():
            if batch in shown:
                continue
            shown.add(batch)
            lines += [
                "",
                f"=== batch {batch}, first to show: {kind}",
                *problems,
                "--- its updates:",
                describe(pushed) if pushed else "(after the last batch)",
            ]
        if self.broken:
            lines.append("\nThe bot stopped answering; the batches after that one were skipped.")
        return "\n".join(lines)

    def remember_pushed(self, update: JSONDict) -> None:
        self.by_update_id[update["update_id"]] = update
        for key in ("message", "edited_message", "channel_post", "edited_channel_post"):
            body = update.get(key)
            if isinstance(body, dict):
                self.by_message[(body["chat"]["id"], body["message_id"])] = update

    def check_calls(self) -> list[str]:
        """Telegram refusals of what the bot sent, and sends to places the bot must not reach."""
        problems = []
        calls = self.api.calls
        in_flight = []  # a long poll, a send not answered yet: judged next time
        refusals: Counter[str] = Counter()
        for index in range(self.call_cursor, len(calls)):
            call = calls[index]
            if call.status is None:
                in_flight.append(index)
                continue
            if index in self.judged:
                continue
            if call.status not in (200, 403) and call.method != "getUpdates":  # (403: not retried; a patient who blocked the bot)
                refusals[_call_key(call)] += 1
            if problem := self._judge(call):
                params = _shorten({k: v for k, v in call.params.items() if k != "reply_markup"})
                source = self.by_message.get((call.params.get("from_chat_id"), call.params.get("message_id")))  # what was copied
                about = f"; copying {describe([source])}" if call.method == "copyMessage" and source else ""
                problems.append(f"{call.method} -> {call.status} {call.description!r}: {problem}; params={params}{about}")
            self.judged.add(index)
        problems += [f"the same refused request {n} times (a retry loop): {key}" for key, n in refusals.items() if n > 3]
        self.call_cursor = in_flight[0] if in_flight else len(calls)
        self.judged = {i for i in self.judged if i >= self.call_cursor} - set(in_flight)
        answers = getattr(self.api, "webhook_answers", [])  # webhook mode: how the bot answered Telegram's POSTs
        refused = Counter((update_id, status) for update_id, status in answers[self.answer_cursor :] if not 200 <= status < 300)
        for (update_id, status), times in refused.items():
            update = describe([self.by_update_id[update_id]]) if update_id in self.by_update_id else "?"
            problems.append(f"the webhook answered HTTP {status} ({times} times) to update {update_id}, so Telegram drops it: {update}")
        self.answer_cursor = len(answers)
        return problems

    def _judge(self, call: Any) -> str | None:
        params, method = call.params, call.method
        chat_id = params.get("chat_id")
        if method.startswith(("send", "copy", "forward")) and isinstance(chat_id, int):
            if chat_id != self.staff and chat_id <= 0:
                return "the bot wrote to a chat other than a patient's or the staff group"
            if method == "copyMessage":
                source = params.get("from_chat_id")
                if chat_id == self.staff and not (isinstance(source, int) and source > 0):
                    return "copied into the staff group from somewhere other than a patient"
                if chat_id != self.staff and source != self.staff:
                    return "copied to a patient from somewhere other than the staff group"
        if call.status == 200 or (method == "getUpdates" and call.status == 409):
            return None
        description = call.description or ""
        if method == "answerCallbackQuery" and str(params.get("callback_query_id")) in self.stale_queries:
            return None  # a stale query: nothing to answer
        if "message thread not found" in description and params.get("message_thread_id") in self.deleted_threads:
            return None  # staff deleted the topic; the bot opens a new one
        if method.startswith("editMessage") and "message is not modified" in description:
            return None  # staff "corrected" a message to what it already said
        if method in ("deleteForumTopic", "closeForumTopic") and params.get("message_thread_id") in self.deleted_threads:
            return None  # a forgotten patient's topic, which staff deleted first
        if call.status == 403 and chat_id in self.ever_blocked:
            return None  # the patient blocked the bot
        return "Telegram refused a request"


def _updates_in(log: list[JSONDict]) -> int:
    return sum(1 for entry in log if "update_id" in entry)


def _runaway_limit(updates: int) -> int:
    """A few requests an update is normal; far more means the bot is looping."""
    return max(RUNAWAY_CALLS, 40 * updates)


def _call_key(call: Any) -> str:
    """A request and its answer, in short: what a retry loop repeats."""
    keys = ("chat_id", "message_thread_id", "from_chat_id", "message_id", "callback_query_id")
    params = {k: call.params.get(k) for k in keys if call.params.get(k) is not None}
    text = call.params.get("text")
    if isinstance(text, str):
        params["text"] = text[:50]
    return f"{call.method} -> {call.status} {call.description!r} {params}"


def _blocked_patient(record: logging.LogRecord) -> bool:
    """Giving up on a patient who blocked the bot is expected (and the bot says so at ERROR)."""
    return "bot was blocked by the user" in record.getMessage()


def _chat_of(update: JSONDict) -> int | None:
    body = next(v for k, v in update.items() if k != "update_id")
    message = body.get("message", body) if isinstance(body, dict) else {}
    return (message.get("chat") or {}).get("id") if isinstance(message, dict) else None


# ======================================================================================
# The bot on its own event loop
# ======================================================================================


class LoopThread:
    """An event loop in a background thread: the bot runs there for the whole property run."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzzed-bot", daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def __exit__(self, *exc_info: object) -> None:
        async def cancel_the_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        try:
            self.run(cancel_the_rest(), timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(30)
            self.loop.close()


# Each of these (kinds of update, or "kind:chat type" of messages) must have come up in a full run.
_CAPTIONED = ("photo", "video", "document", "audio", "voice", "animation")
EXPECTED_KINDS = (
    "message:private",
    "message:supergroup",
    "edited_message:private",
    "edited_message:supergroup",
    "channel_post:channel",
    "edited_channel_post:channel",
    "business_message:private",
    "callback_query",
    "message_reaction",
    "message_reaction_count",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "poll",
    "poll_answer",
    "inline_query",
    "chosen_inline_result",
    "chat_boost",
    "removed_chat_boost",
    "future_update_",
)
MIN_PRIVATE_CONTENT_KINDS = 12  # of text, sticker, photo, voice, video, audio, document, location, contact, dice, poll...


async def switch_to_webhook(harness: BotHarness, api: FakeBotApi) -> asyncio.Task[None]:
    """Run the started bot in webhook mode instead, with the fake server delivering updates as Telegram does."""
    updater = harness.application.updater if harness.application else None
    assert updater is not None
    await updater.stop()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/telegram"
    assert harness.application is not None
    server = await open_webhook(harness.application, WebhookConfig(listen="127.0.0.1", port=port, url=url, secret_token="fuzz-secret"))
    harness.webhook_server = server  # type: ignore[attr-defined]  # stopped with the bot
    return asyncio.create_task(api.deliver_to_webhook(), name="telegram-delivers-to-the-webhook")


@pytest.mark.parametrize("mode", ["polling", "webhook"])
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")  # the generated updates use deprecated fields
def test_the_bot_survives_thousands_of_hostile_updates(
    mode: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.ERROR)
    stop_error: str | None = None
    with LoopThread() as loop:
        api = FakeBotApi()
        loop.run(api.start())
        api.deliver_every_update_type()
        api.refuse_uncopyable_messages()
        for group, is_forum in OTHER_GROUPS.items():
            api.add_group(group, is_forum=is_forum)
        harness = BotHarness(api, tmp_path)
        world = World(api, harness, lambda chat_id: monkeypatch.setattr(bot_harness, "SENTINEL_CHAT", chat_id))
        delivery: asyncio.Task[None] | None = None

        def stop_now() -> None:
            nonlocal stop_error
            if delivery is not None:
                loop.loop.call_soon_threadsafe(delivery.cancel)
            try:
                if (server := getattr(harness, "webhook_server", None)) is not None:
                    loop.run(server.stop())
                loop.run(harness.stop())
            except Exception:  # the Updater re-raises what killed polling
                stop_error = traceback.format_exc()  # the whole story: this once failed too rarely to catch

        try:
            loop.run(harness.start())
            if mode == "webhook":
                delivery = loop.run(switch_to_webhook(harness, api))

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                # Examples depend on the state the bot built up, so replaying or shrinking one alone proves
                # little (and shrinking against a live bot takes minutes); problems are collected below.
                database=None,
                phases=(Phase.explicit, Phase.generate),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
            )
            @given(batch=batches())
            def the_bot_copes(batch: JSONDict) -> None:
                if world.broken:
                    return  # nothing more to learn from a bot that no longer answers
                errors_before = len(caplog.records)
                try:
                    problems, pushed = loop.run(world.play(batch))
                except concurrent.futures.TimeoutError:
                    problems, pushed = ["the bot stopped answering: a batch took more than 120 s"], []
                    world.broken = "timeout"
                errors = [r for r in caplog.records[errors_before:] if r.levelno >= logging.ERROR and not _blocked_patient(r)]
                problems += [f"logged {r.levelname} by {r.name}: {r.getMessage()}" + (f" ({r.exc_info[1]!r})" if r.exc_info else "") for r in errors]
                world.record(problems, pushed)
                if world.broken == "runaway":
                    stop_now()  # a looping bot would slow down everything until the end of the run

            # Every batch runs (the bot's state builds up from batch to batch); the problems are
            # collected and reported together, each kind once, with the first batch that showed it.
            the_bot_copes()
            if not world.broken:
                world.record(loop.run(world.last_check()), [], batch=False)
            if world.failures:
                pytest.fail(world.report(), pytrace=False)
        finally:
            stop_now()
            loop.run(api.stop())
    assert stop_error is None, f"stopping the bot failed:\n{stop_error}"
    total = sum(world.kinds.values())
    calls = Counter(f"{c.method} {c.status}" for c in api.calls)
    print(f"{mode}: {total} updates in {EXAMPLES} batches:", ", ".join(f"{k} {n}" for k, n in sorted(world.kinds.items())))
    print("the bot's calls:", ", ".join(f"{k} x{n}" for k, n in sorted(calls.items())))
    floods = sum(1 for c in api.calls if c.method == "sendMessage" and c.params.get("text") == TEXTS["flood_notice"])
    print(f"patients: {len(world.patients)} (+ probes, sentinels, flooders); flood notices: {floods}; topics: {len(api.topics(api.staff_chat_id))}")
    missing = [kind for kind in EXPECTED_KINDS if not any(seen.startswith(kind) for seen in world.kinds)]
    private_kinds = {kind for kind in world.kinds if kind.startswith("message:private:") and ":future_" not in kind}
    assert total >= MIN_UPDATES, f"only {total} updates were delivered"
    if EXAMPLES >= 100:  # a short run (FUZZ_EXAMPLES) need not see everything
        assert not missing, f"never generated: {missing}"
        assert len(private_kinds) >= MIN_PRIVATE_CONTENT_KINDS, f"only these kinds of private message: {sorted(private_kinds)}"
