"""The fake Bot API server, exercised through the real python-telegram-bot stack."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.ext import Application, ApplicationBuilder, ContextTypes, MessageHandler, filters

# aiohttp powers the fake server; skip (rather than break collection) where it is missing.
aiohttp = pytest.importorskip("aiohttp")

from tests.fake_bot_api import Call, FakeBotApi, parse_html  # noqa: E402

USER = 424242
STAFF = -1001234567890


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as server:
        yield server


@pytest.fixture
async def bot(api: FakeBotApi) -> AsyncIterator[Bot]:
    async with Bot(api.token, base_url=api.base_url, base_file_url=api.base_file_url) as real_bot:
        yield real_bot


def _build_app(api: FakeBotApi) -> Application:
    return (
        ApplicationBuilder()
        .token(api.token)
        .base_url(api.base_url)
        .base_file_url(api.base_file_url)
        .build()
    )


async def _echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    await update.effective_message.reply_text(f"echo: {update.effective_message.text}")


# --------------------------------------------------------------------------- basics


async def test_get_me_and_call_log(api: FakeBotApi, bot: Bot) -> None:
    me = await bot.get_me()
    assert me.id == 123456 and me.is_bot and me.username == "test_bot"
    call = await api.wait_for("getMe")
    assert isinstance(call, Call) and call.ok and call.result["username"] == "test_bot"
    assert api.base_url == f"http://127.0.0.1:{api.port}/bot"
    assert api.base_file_url == f"http://127.0.0.1:{api.port}/file/bot"


async def test_wrong_token_is_unauthorized(api: FakeBotApi) -> None:
    with pytest.raises(InvalidToken):
        async with Bot("999:WRONG", base_url=api.base_url) as wrong:
            await wrong.get_me()
    call = api.calls[-1]
    assert call.status == 401
    assert call.response == {"ok": False, "error_code": 401, "description": "Unauthorized"}


async def test_unknown_method_is_not_found(api: FakeBotApi) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{api.base_url}{api.token}/sendTelepathy", data={"a": "1"}) as resp:
            assert resp.status == 404
            assert await resp.json() == {"ok": False, "error_code": 404, "description": "Not Found"}


async def test_decodes_json_and_urlencoded_bodies(api: FakeBotApi) -> None:
    api.add_private_chat(USER, "Ann")
    markup = {"inline_keyboard": [[{"text": "Yes", "callback_data": "yes"}]]}
    url = f"{api.base_url}{api.token}/sendMessage"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"chat_id": str(USER), "text": "json", "reply_markup": markup}) as resp:
            body = await resp.json()
            assert resp.status == 200 and body["result"]["reply_markup"] == markup
        form = {"chat_id": str(USER), "text": "form", "reply_markup": json.dumps(markup), "protect_content": "true"}
        async with session.post(url, data=form) as resp:
            assert resp.status == 200
    params = api.calls_to("sendMessage")[-1].params
    assert params["chat_id"] == USER and params["reply_markup"] == markup and params["protect_content"] is True


async def test_wait_for_times_out_with_recent_calls(api: FakeBotApi, bot: Bot) -> None:
    await bot.get_me()
    with pytest.raises(AssertionError, match=r"(?s)waiting for a sendMessage call.*getMe -> 200"):
        await api.wait_for("sendMessage", timeout=0.05)


# --------------------------------------------------------------------------- sending and refusals


async def test_send_message_result_is_realistic(api: FakeBotApi, bot: Bot) -> None:
    api.add_private_chat(USER, "Ann")
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Book", callback_data="book")]])
    sent = await bot.send_message(USER, "<b>Hello</b> &amp; welcome", parse_mode=ParseMode.HTML, reply_markup=keyboard)
    assert sent.text == "Hello & welcome"
    assert sent.entities[0].type == "bold" and (sent.entities[0].offset, sent.entities[0].length) == (0, 5)
    assert sent.from_user.id == 123456 and sent.chat.type == "private"
    assert sent.reply_markup == keyboard
    stored = await api.wait_for_message(USER, lambda m: m["text"].startswith("Hello"))
    assert stored["message_id"] == sent.message_id and stored["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "book"


async def test_too_long_text_is_refused(api: FakeBotApi, bot: Bot) -> None:
    api.add_private_chat(USER)
    await bot.send_message(USER, "x" * 4096)
    with pytest.raises(BadRequest, match="Message is too long"):
        await bot.send_message(USER, "x" * 4097)
    # The limit applies after entity parsing: markup does not count.
    await bot.send_message(USER, "<b>" + "x" * 4096 + "</b>", parse_mode=ParseMode.HTML)
    assert api.calls_to("sendMessage")[1].description == "Bad Request: message is too long"


async def test_empty_text_is_refused(api: FakeBotApi, bot: Bot) -> None:
    api.add_private_chat(USER)
    with pytest.raises(BadRequest, match="Message text is empty"):
        await bot.send_message(USER, "   ")


@pytest.mark.parametrize(
    ("markup", "reason"),
    [
        ("<b>x", 'start tag "b"'),
        ("a < b", 'unsupported start tag ""'),
        ("<script>alert(1)</script>", 'unsupported start tag "script"'),
        ("<b>x</i>", "unmatched end tag"),
        ('<span class="x">y</span>', 'tag "span" must have class "tg-spoiler"'),
    ],
)
async def test_bad_html_is_refused(api: FakeBotApi, bot: Bot, markup: str, reason: str) -> None:
    api.add_private_chat(USER)
    with pytest.raises(BadRequest) as excinfo:
        await bot.send_message(USER, markup, parse_mode=ParseMode.HTML)
    assert excinfo.value.message.startswith("Can't parse entities")
    assert reason in excinfo.value.message.lower()


def test_html_parser_supports_telegram_tags() -> None:
    text, entities = parse_html(
        '<b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>n</ins><s>s</s><strike>k</strike>'
        '<del>d</del><span class="tg-spoiler">p</span><tg-spoiler>q</tg-spoiler>'
        '<a href="https://example.com">a</a><code>c</code><pre><code class="language-python">x</code></pre>'
        "<blockquote>q</blockquote>"
        '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji> &lt;&gt;&amp;&quot; a > b'
    )
    assert text == 'bsieunskdpqacxq👍 <>&" a > b'
    types = [e["type"] for e in entities]
    assert types == [
        "bold", "bold", "italic", "italic", "underline", "underline", "strikethrough",
        "strikethrough", "strikethrough", "spoiler", "spoiler", "text_link", "code", "pre",
        "blockquote", "custom_emoji",
    ]
    assert entities[11]["url"] == "https://example.com/" and entities[13]["language"] == "python"
    assert entities[15]["offset"] == 15 and entities[15]["length"] == 2  # UTF-16 units


async def test_callback_data_over_64_bytes_is_refused(api: FakeBotApi, bot: Bot) -> None:
    api.add_private_chat(USER)
    ok = InlineKeyboardMarkup([[InlineKeyboardButton("ok", callback_data="x" * 64)]])
    await bot.send_message(USER, "fits", reply_markup=ok)
    too_long = InlineKeyboardMarkup([[InlineKeyboardButton("no", callback_data="é" * 32 + "x")]])  # 65 bytes
    with pytest.raises(BadRequest, match="(?i)button_data_invalid"):
        await bot.send_message(USER, "does not fit", reply_markup=too_long)
    assert api.calls_to("sendMessage")[-1].description == "Bad Request: BUTTON_DATA_INVALID"


async def test_unknown_and_blocked_chats(api: FakeBotApi, bot: Bot) -> None:
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(777, "who?")
    api.push_update(api.private_text(USER, "hi"))
    api.block(USER)
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(USER, "hello")
    api.unblock(USER)
    await bot.send_message(USER, "hello again")
    assert [m["text"] for m in api.sent_messages(USER)] == ["hello again"]


async def test_send_photo_upload_and_download(api: FakeBotApi, bot: Bot) -> None:
    api.add_private_chat(USER)
    sent = await bot.send_photo(USER, photo=b"\x89PNG fake bytes", caption="<i>look</i>", parse_mode=ParseMode.HTML)
    assert sent.caption == "look" and sent.caption_entities[0].type == "italic"
    upload = api.calls_to("sendPhoto")[-1].params["photo"]
    assert upload.data == b"\x89PNG fake bytes"
    file = await bot.get_file(sent.photo[-1].file_id)
    assert bytes(await file.download_as_bytearray()) == b"\x89PNG fake bytes"
    # Known file_ids can be re-sent; invented ones are refused.
    await bot.send_photo(USER, photo=sent.photo[-1].file_id)
    with pytest.raises(BadRequest, match="Wrong file identifier"):
        await bot.send_sticker(USER, sticker="NOT-A-REAL-FILE-ID")
    with pytest.raises(BadRequest, match="Message caption is too long"):
        await bot.send_document(USER, document=b"doc", filename="a.txt", caption="c" * 1025)


async def test_media_group_voice_sticker(api: FakeBotApi, bot: Bot) -> None:
    api.add_private_chat(USER)
    group = await bot.send_media_group(USER, [InputMediaPhoto(b"one"), InputMediaPhoto(b"two", caption="2")])
    assert len(group) == 2 and group[0].media_group_id == group[1].media_group_id and group[1].caption == "2"
    voice = await bot.send_voice(USER, voice=b"ogg", duration=3)
    assert voice.voice.file_id and api.sent_messages(USER)[-1]["voice"]["duration"] == 3
    sticker_id = api.add_file(b"webp", kind="sticker")
    sticker = await bot.send_sticker(USER, sticker=sticker_id)
    assert sticker.sticker.file_id == sticker_id
    assert len(api.sent_messages(USER)) == 4


# --------------------------------------------------------------------------- staff supergroup and topics


async def test_topics_threads_and_copies(api: FakeBotApi, bot: Bot) -> None:
    with pytest.raises(BadRequest, match="Message thread not found"):
        await bot.send_message(STAFF, "into nowhere", message_thread_id=99)
    with pytest.raises(BadRequest, match="Message thread not found"):
        await bot.send_message(STAFF, "General is not a thread", message_thread_id=1)

    topic = await bot.create_forum_topic(STAFF, "Ann (424242)")
    thread = topic.message_thread_id
    sent = await bot.send_message(STAFF, "new patient", message_thread_id=thread)
    assert sent.message_thread_id == thread and sent.is_topic_message

    update = api.private_text(USER, "my question")
    api.push_update(update)
    new_id = await bot.copy_message(STAFF, USER, update["message"]["message_id"], message_thread_id=thread)
    assert api.copies == [
        {"from_chat_id": USER, "message_id": update["message"]["message_id"], "chat_id": STAFF,
         "message_thread_id": thread, "new_message_id": new_id.message_id}
    ]
    assert [m["text"] for m in api.sent_messages(STAFF, thread)] == ["new patient", "my question"]

    await bot.close_forum_topic(STAFF, thread)
    assert api.topics(STAFF)[thread]["closed"] is True
    await bot.send_message(STAFF, "still fine: the bot is admin", message_thread_id=thread)
    with pytest.raises(BadRequest, match="(?i)topic_not_modified"):
        await bot.close_forum_topic(STAFF, thread)

    api.delete_topic(STAFF, thread)
    assert api.topics(STAFF)[thread] == {"name": "Ann (424242)", "icon_color": 7322096, "closed": True, "deleted": True}
    with pytest.raises(BadRequest, match="Message thread not found"):
        await bot.send_message(STAFF, "gone", message_thread_id=thread)


async def test_group_message_builder_and_forward(api: FakeBotApi, bot: Bot) -> None:
    thread = api.create_topic(STAFF, "Bob")
    in_topic = api.group_message(STAFF, "reply to patient", thread_id=thread)["message"]
    general = api.group_message(STAFF, "hello all")["message"]
    assert in_topic["message_thread_id"] == thread and in_topic["is_topic_message"] is True
    assert "message_thread_id" not in general and "is_topic_message" not in general
    assert in_topic["chat"] == {"id": STAFF, "title": "Staff", "type": "supergroup", "is_forum": True}
    api.add_private_chat(USER)
    forwarded = await bot.forward_message(USER, STAFF, in_topic["message_id"])
    assert forwarded.text == "reply to patient" and forwarded.forward_origin.sender_user.id == in_topic["from"]["id"]


async def test_get_chat_and_member_rights() -> None:
    async with FakeBotApi(staff_is_forum=False, bot_can_manage_topics=False) as api:
        async with Bot(api.token, base_url=api.base_url) as bot:
            chat = await bot.get_chat(STAFF)
            assert chat.type == "supergroup" and not chat.is_forum
            member = await bot.get_chat_member(STAFF, 123456)
            assert member.status == "administrator" and member.can_manage_topics is False
            with pytest.raises(BadRequest, match="The chat is not a forum"):
                await bot.create_forum_topic(STAFF, "x")
            api.staff_is_forum = True
            with pytest.raises(BadRequest, match="Not enough rights to create a topic"):
                await bot.create_forum_topic(STAFF, "x")
            api.bot_status = "member"
            assert (await bot.get_chat_member(STAFF, 123456)).status == "member"
            with pytest.raises(BadRequest, match="Chat not found"):
                await bot.get_chat(-100999)
            api.add_private_chat(USER, "Ann")
            assert (await bot.get_chat(USER)).type == "private"


# --------------------------------------------------------------------------- edits and callbacks


async def test_edits_callbacks_and_deletes(api: FakeBotApi, bot: Bot) -> None:
    api.add_private_chat(USER)
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Pick", callback_data="pick")]])
    sent = await bot.send_message(USER, "choose", reply_markup=keyboard)
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_text("choose", USER, sent.message_id, reply_markup=keyboard)
    edited = await bot.edit_message_text("chosen", USER, sent.message_id)
    assert edited.text == "chosen" and edited.reply_markup is None  # no markup given: keyboard removed

    update = api.callback_query(USER, "pick", sent.message_id)
    query_id = update["callback_query"]["id"]
    assert await bot.answer_callback_query(query_id, text="ok")
    with pytest.raises(BadRequest, match="Query is too old"):
        await bot.answer_callback_query(query_id)

    assert await bot.delete_message(USER, sent.message_id)
    assert api.is_deleted(USER, sent.message_id)
    with pytest.raises(BadRequest, match="Message to delete not found"):
        await bot.delete_message(USER, sent.message_id)


async def test_commands_actions_and_webhook_info(api: FakeBotApi, bot: Bot) -> None:
    assert await bot.set_my_commands([BotCommand("start", "Start"), BotCommand("help", "Help")])
    assert api.commands == [{"command": "start", "description": "Start"}, {"command": "help", "description": "Help"}]
    with pytest.raises(BadRequest, match="(?i)bot_command_invalid"):
        await bot.set_my_commands([BotCommand("Bad-Name", "x")])
    api.add_private_chat(USER)
    assert await bot.send_chat_action(USER, "typing")
    info = await bot.get_webhook_info()
    assert info.url == "" and info.pending_update_count == 0


# --------------------------------------------------------------------------- faults


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")  # raised inside RetryAfter
async def test_injected_429_is_retry_after(api: FakeBotApi, bot: Bot) -> None:
    api.add_private_chat(USER)
    api.fail_next("sendMessage", status=429, retry_after=7)
    with pytest.raises(RetryAfter) as excinfo:
        await bot.send_message(USER, "flood")
    assert "retry in 7 seconds" in excinfo.value.message.lower()
    assert api.calls_to("sendMessage")[-1].response == {
        "ok": False, "error_code": 429, "description": "Too Many Requests: retry after 7",
        "parameters": {"retry_after": 7},
    }
    await bot.send_message(USER, "fine now")
    api.fail_next("sendMessage", times=2, status=502)
    for _ in range(2):
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.send_message(USER, "gateway")
    await bot.send_message(USER, "fine again")
    assert [m["text"] for m in api.sent_messages(USER)] == ["fine now", "fine again"]


async def test_delay_slows_a_method(api: FakeBotApi, bot: Bot) -> None:
    api.add_private_chat(USER)
    api.delay("sendMessage", 0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await bot.send_message(USER, "slow")
    assert loop.time() - started >= 0.2
    api.delay("sendMessage", 0)
    started = loop.time()
    await bot.send_message(USER, "fast")
    assert loop.time() - started < 0.2


async def test_telegram_limits_refuse_with_retry_after_as_telegram_does(api: FakeBotApi, bot: Bot) -> None:
    api.add_private_chat(USER)
    limits = api.enforce_limits()
    for n in range(3):  # a short burst into one chat is tolerated
        await bot.send_message(USER, f"burst {n}")
    with pytest.raises(RetryAfter):
        await bot.send_message(USER, "one too many")
    for n in range(20):  # 20 into a group in any minute, no more
        await bot.send_message(STAFF, f"group {n}")
    with pytest.raises(RetryAfter):
        await bot.send_message(STAFF, "the 21st")
    assert 55 <= api.calls[-1].response["parameters"]["retry_after"] <= 60  # the oldest leaves the window in a minute
    assert [chat for chat, _ in limits.refused] == [USER, STAFF]
    assert len(api.sent_messages(STAFF)) == 20  # refused messages are not delivered


# --------------------------------------------------------------------------- getUpdates


async def test_get_updates_offset_confirms_and_drops(api: FakeBotApi, bot: Bot) -> None:
    ids = [api.push_update(api.private_text(USER, f"m{i}")) for i in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3
    updates = await bot.get_updates()
    assert [u.message.text for u in updates] == ["m0", "m1", "m2"]
    assert len(await bot.get_updates()) == 3  # nothing confirmed yet
    again = await bot.get_updates(offset=ids[1])
    assert [u.update_id for u in again] == ids[1:]
    assert api.confirmed_offset == ids[1]
    assert await bot.get_updates(offset=ids[2] + 1) == ()
    assert api.confirmed_offset == ids[2] + 1 and api.pending_updates == []
    limited_ids = [api.push_update(api.private_text(USER, f"n{i}")) for i in range(3)]
    assert [u.update_id for u in await bot.get_updates(limit=2)] == limited_ids[:2]


async def test_get_updates_long_poll_returns_early(api: FakeBotApi, bot: Bot) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=30, allowed_updates=["message"]))
    # The long poll is logged on arrival and answered later.
    pending = await api.wait_for("getUpdates", answered=False)
    assert pending.status is None
    update_id = api.push_update(api.private_text(USER, "wake up"))
    updates = await asyncio.wait_for(poll, timeout=5)
    assert [u.update_id for u in updates] == [update_id]
    assert api.allowed_updates == ["message"]
    # A callback query is not among the allowed updates: it is never delivered.
    api.push_update(api.callback_query(USER, "x", 1))
    assert await bot.get_updates(offset=update_id + 1) == ()


async def test_webhook_blocks_get_updates(api: FakeBotApi, bot: Bot) -> None:
    assert await bot.set_webhook("https://example.invalid/hook", secret_token="abc")
    assert api.webhook is not None and api.webhook["secret_token"] == "abc"
    with pytest.raises(Conflict, match="webhook is active"):
        await bot.get_updates()
    assert await bot.delete_webhook()
    assert api.webhook is None


# --------------------------------------------------------------------------- real Application


async def test_application_polling_receives_and_replies(api: FakeBotApi) -> None:
    app = _build_app(api)
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, _echo))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(timeout=10)
        update_id = api.push_update(api.private_text(USER, "hello bot", first_name="Ann"))
        reply = await api.wait_for_message(USER)
        assert reply["text"] == "echo: hello bot" and reply["chat"]["first_name"] == "Ann"
        await app.updater.stop()
        await app.stop()
    assert api.calls_to("deleteWebhook") and api.calls_to("getMe")
    assert api.confirmed_offset == update_id + 1
