"""End to end: the real Application, over HTTP, against the fake Telegram Bot API server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

aiohttp = pytest.importorskip("aiohttp")

from tests.bot_harness import BotHarness, button_data, keyboard_labels, markup_sent  # noqa: E402
from tests.fake_bot_api import FakeBotApi  # noqa: E402

ANA = 1001
BEN = 1002


async def test_start_registers_commands_and_welcomes_with_topics(bot: BotHarness, api: FakeBotApi) -> None:
    assert {c["command"] for c in api.commands_for() or []} == {"start", "help", "book", "human", "end", "cancel", "forget"}
    welcome = await bot.say(ANA, "/start")
    assert welcome["text"] == bot.dialogue.texts["welcome"]
    data = button_data(welcome)
    assert "do:book" in data and "do:human" in data and any(d.startswith("faq:") for d in data)
    assert api.allowed_updates is not None and {"message", "edited_message", "callback_query"} <= set(api.allowed_updates)


async def test_a_question_gets_its_answer_with_follow_ups_and_buttons_work(bot: BotHarness) -> None:
    answer = await bot.say(ANA, "hi! does it leave a scarr")
    scars = bot.dialogue.knowledge.entry("scars")
    assert answer["text"] == scars.answer
    assert button_data(answer) == [f"faq:{f}" for f in scars.follow_ups][:3]
    followed = await bot.press(ANA, button_data(answer)[0], answer["message_id"])
    assert followed["text"] == bot.dialogue.knowledge.entry(scars.follow_ups[0]).answer


async def test_fallback_offers_staff_and_booking_and_is_recorded(bot: BotHarness) -> None:
    reply = await bot.say(ANA, "do you take insurance")
    assert reply["text"] == bot.dialogue.texts["fallback"]
    assert button_data(reply) == ["do:human", "do:book"]
    assert bot.store is not None and bot.store.unanswered()[0][0] == "do you take insurance"


async def test_stickers_and_stale_buttons_get_a_gentle_reply(bot: BotHarness, api: FakeBotApi) -> None:
    sticker = {"file_id": "stk", "file_unique_id": "stk-u", "type": "regular", "width": 512, "height": 512, "is_animated": False, "is_video": False}
    reply = await bot.push_and_wait(ANA, api.private_message(ANA, sticker=sticker))
    assert reply["text"] == bot.dialogue.texts["unsupported_message"]
    stale = await bot.press(ANA, "faq:an-entry-that-was-removed")
    assert stale["text"] == bot.dialogue.texts["stale_button"]
    assert api.answered_callbacks  # the button's spinner was stopped


async def test_booking_end_to_end_tells_the_patient_and_posts_a_card(bot: BotHarness, api: FakeBotApi) -> None:
    t = bot.dialogue.texts
    ask_name = await bot.say(ANA, "/book", first_name="Ana")
    assert ask_name["text"].endswith(t["booking_ask_name"])
    ask_phone = await bot.say(ANA, "Ana <b>Kim</b>")
    assert keyboard_labels(api, ask_phone)[0] == t["button_share_phone"]
    assert markup_sent(api, ask_phone)["keyboard"][0][0]["request_contact"] is True
    contact = {"phone_number": "+82 10-1234-5678", "first_name": "Ana", "user_id": ANA}
    ask_when = await bot.push_and_wait(ANA, api.private_message(ANA, contact=contact))
    assert ask_when["text"] == t["booking_ask_when"]
    await bot.say(ANA, "Weekday mornings")
    await bot.say(ANA, t["button_skip"])
    summary = await bot.say(ANA, t["button_consent_yes"])
    assert "+82 10-1234-5678" in summary["text"]
    confirmed = await bot.say(ANA, t["button_confirm"])
    assert confirmed["text"] == t["booking_confirmed"]
    # The request was stored before the patient was told (the card may wait for the staff
    # group's minute budget; the patient does not).
    assert bot.store is not None and bot.store.bookings(ANA)[0].phone == "+821012345678"
    card = await api.wait_for_message(bot.staff_chat_id, predicate=lambda m: "Weekday mornings" in (m.get("text") or ""))
    assert card.get("message_thread_id") == await bot.wait_topic(ANA)
    assert "Ana &lt;b&gt;Kim&lt;/b&gt;" not in card["text"]  # Telegram shows entities decoded
    assert "Ana <b>Kim</b>" in card["text"] and "+82 10-1234-5678" in card["text"]


async def test_handoff_relays_both_ways_notes_stay_internal_and_close_returns_to_the_bot(bot: BotHarness, api: FakeBotApi) -> None:
    t = bot.dialogue.texts
    told = await bot.say(ANA, "connect me to a human pls", first_name="<b>x</b>", username="ana_k")
    assert told["text"] == t["human"]
    thread = await bot.wait_topic(ANA)
    assert "&lt;b&gt;x&lt;/b&gt;" not in api.topics(bot.staff_chat_id)[thread]["name"]
    card = (await api.wait_for_message(bot.staff_chat_id, thread_id=thread))["text"]
    assert "<b>x</b>" in card and "@ana_k" in card and "connect me to a human pls" in card

    api.push_update(api.private_text(ANA, "is anyone there? my left cheek feels tight"))
    copied = await api.wait_for_message(bot.staff_chat_id, lambda m: "left cheek" in (m.get("text") or ""), thread_id=thread)
    assert copied["message_thread_id"] == thread

    before = len(bot.sent_to(ANA))
    await bot.staff_says(thread, "/note she called yesterday too")
    await bot.staff_says(thread, "Hello Ana, this is Mina, your coordinator.")
    relayed = await api.wait_for_message(ANA, after=before)
    assert relayed["text"] == "Hello Ana, this is Mina, your coordinator."  # the note never reached her

    photo = [{"file_id": "staff-photo", "file_unique_id": "sp", "width": 100, "height": 100}]
    before = len(bot.sent_to(ANA))
    await bot.staff_says(thread, None, photo=photo, caption="aftercare sheet")
    media = await api.wait_for_message(ANA, after=before)
    assert media.get("photo") and media.get("caption") == "aftercare sheet"

    before = len(bot.sent_to(ANA))
    await bot.staff_says(thread, "/close")
    back = await api.wait_for_message(ANA, after=before)
    assert back["text"].startswith(t["handoff_ended_by_staff"])
    answer = await bot.say(ANA, "does it leave a scar")
    assert answer["text"] == bot.dialogue.knowledge.entry("scars").answer

    staff_before = len(api.sent_messages(bot.staff_chat_id, thread))
    patient_before = len(bot.sent_to(ANA))
    await bot.staff_says(thread, "one more thing")
    notice = await api.wait_for_message(bot.staff_chat_id, thread_id=thread, after=staff_before)
    assert notice["text"] == t["staff_topic_closed"]
    await bot.barrier()
    assert len(bot.sent_to(ANA)) == patient_before


async def test_the_card_close_button_a_rating_and_the_patients_end(bot: BotHarness, api: FakeBotApi) -> None:
    t = bot.dialogue.texts
    await bot.say(ANA, "/human")
    thread = await bot.wait_topic(ANA)
    card = await api.wait_for_message(bot.staff_chat_id, thread_id=thread)
    before = len(bot.sent_to(ANA))
    api.push_update(api.callback_query(bot.staff_chat_id, "staff:close", card["message_id"], from_user_id=5550001))
    closed = await api.wait_for_message(ANA, after=before)
    assert closed["text"].startswith(t["handoff_ended_by_staff"]) and t["rating_question"] in closed["text"]
    assert button_data(closed) == ["rate:up", "rate:down"]
    thanks = await bot.press(ANA, "rate:up", closed["message_id"])
    assert thanks["text"] == t["rating_thanks"]
    rated = await api.wait_for_message(bot.staff_chat_id, lambda m: t["button_rate_helpful"] in (m.get("text") or ""), thread_id=thread)
    assert rated["text"] == t["staff_rated"].format(rating=t["button_rate_helpful"])
    assert bot.store is not None and bot.store.report(since=0).helpful == 1

    await bot.staff_says(thread, "/open")
    assert (await api.wait_for_message(ANA, after=before + 2))["text"] == t["handoff_reopened"]
    staff_before = len(api.sent_messages(bot.staff_chat_id, thread))
    ended = await bot.say(ANA, "/end")
    assert ended["text"] == t["handoff_ended_by_patient"]
    told = await api.wait_for_message(bot.staff_chat_id, lambda m: m.get("text") == t["staff_patient_ended"], thread_id=thread, after=staff_before)
    assert told


async def test_two_patients_handed_off_at_once_never_cross(bot: BotHarness, api: FakeBotApi) -> None:
    api.push_update(api.private_text(ANA, "/human", first_name="Ana"))
    api.push_update(api.private_text(BEN, "/human", first_name="Ben"))
    await api.wait_for_message(ANA)
    await api.wait_for_message(BEN)
    await bot.barrier()
    ana_topic, ben_topic = await bot.wait_topic(ANA), await bot.wait_topic(BEN)
    assert ana_topic != ben_topic
    api.push_update(api.private_text(ANA, "ana's question"))
    api.push_update(api.private_text(BEN, "ben's question"))
    await api.wait_for_message(bot.staff_chat_id, lambda m: m.get("text") == "ana's question", thread_id=ana_topic)
    await api.wait_for_message(bot.staff_chat_id, lambda m: m.get("text") == "ben's question", thread_id=ben_topic)
    ana_before, ben_before = len(bot.sent_to(ANA)), len(bot.sent_to(BEN))
    await bot.staff_says(ben_topic, "for ben only")
    await bot.staff_says(ana_topic, "for ana only")
    assert (await api.wait_for_message(ANA, after=ana_before))["text"] == "for ana only"
    assert (await api.wait_for_message(BEN, after=ben_before))["text"] == "for ben only"
    for thread in (ana_topic, ben_topic):
        texts = [m.get("text") for m in api.sent_messages(bot.staff_chat_id, thread)]
        other = "ben's question" if thread == ana_topic else "ana's question"
        assert other not in texts


async def test_messages_arriving_together_open_one_topic(bot: BotHarness, api: FakeBotApi) -> None:
    await bot.say(ANA, "/human")
    await bot.barrier()
    for text in ("first", "second", "third"):
        api.push_update(api.private_text(ANA, text))
    await bot.barrier()
    await api.wait_for_message(bot.staff_chat_id, lambda m: "third" in (m.get("text") or ""))
    assert len(api.calls_to("createForumTopic")) == 1
    # In order; texts that waited together arrive as one message.
    relayed = "\n\n".join(m.get("text") or "" for m in api.sent_messages(bot.staff_chat_id, await bot.wait_topic(ANA))[1:])
    assert relayed == "first\n\nsecond\n\nthird"


async def test_a_deleted_topic_is_created_again(bot: BotHarness, api: FakeBotApi) -> None:
    await bot.say(ANA, "/human")
    old = await bot.wait_topic(ANA)
    api.delete_topic(bot.staff_chat_id, old)
    api.push_update(api.private_text(ANA, "still there?"))
    await api.wait_for_message(bot.staff_chat_id, lambda m: m.get("text") == "still there?")
    new = await bot.wait_topic(ANA)
    assert new != old
    assert [m.get("text") for m in api.sent_messages(bot.staff_chat_id, new)][-1] == "still there?"


async def test_urgent_gets_safety_advice_and_an_urgent_card(bot: BotHarness, api: FakeBotApi) -> None:
    reply = await bot.say(ANA, "i had my smas lift 2 days ago and the wound keeps bleeding through the dressing")
    assert reply["text"] == bot.dialogue.texts["urgent"].format(emergency_number="119")  # the advice goes out before anything else
    await bot.barrier()
    thread = await bot.wait_topic(ANA)
    card = await api.wait_for_message(bot.staff_chat_id, thread_id=thread)
    assert bot.dialogue.texts["staff_reason_urgent"] in card["text"]
    assert api.topics(bot.staff_chat_id)[thread]["name"].startswith("URGENT")


async def test_nothing_from_outside_the_staff_topics_reaches_a_patient(bot: BotHarness, api: FakeBotApi) -> None:
    await bot.say(ANA, "/human")
    thread = await bot.wait_topic(ANA)
    before = len(bot.sent_to(ANA))
    api.push_update(api.group_message(bot.staff_chat_id, "general topic chatter"))  # General topic
    api.add_group(-100777, is_forum=True)
    api.push_update(api.group_message(-100777, "other group", thread_id=thread))  # another group, same thread id
    api.push_update(api.private_text(BEN, "/close"))  # a patient trying a staff command
    api.push_update(api.group_message(bot.staff_chat_id, "unknown topic", thread_id=thread + 1000))
    await bot.barrier()
    assert len(bot.sent_to(ANA)) == before
    assert api.left_chats == {-100777}  # the bot does not stay in a group that is not the staff group


async def test_restart_in_the_middle_of_a_handoff_and_of_a_booking(bot: BotHarness, api: FakeBotApi) -> None:
    t = bot.dialogue.texts
    await bot.say(ANA, "/human")
    thread = await bot.wait_topic(ANA)
    await bot.say(BEN, "/book")
    await bot.say(BEN, "Ben")
    await bot.restart()
    api.push_update(api.private_text(ANA, "after the restart"))
    await api.wait_for_message(bot.staff_chat_id, lambda m: m.get("text") == "after the restart", thread_id=thread)
    ask_when = await bot.say(BEN, "010 1234 5678")
    assert ask_when["text"] == t["booking_ask_when"]


async def test_startup_says_what_to_fix_when_the_staff_group_is_wrong(api: FakeBotApi, tmp_path: Path) -> None:
    from bot.adapters.telegram.app import SetupError

    api.staff_is_forum = False
    harness = BotHarness(api, tmp_path)
    with pytest.raises(SetupError, match="turn on Topics"):
        await harness.start()
    await harness.application.shutdown() if harness.application else None
    api.staff_is_forum = True
    api.bot_can_manage_topics = False
    harness = BotHarness(api, tmp_path)
    with pytest.raises(SetupError, match="Manage topics"):
        await harness.start()
    await harness.application.shutdown() if harness.application else None


async def test_webhook_mode_refuses_wrong_secrets_and_huge_bodies_and_skips_unreadable_updates(
    api: FakeBotApi, tmp_path: Path, unused_tcp_port: int
) -> None:
    from bot.adapters.sqlite.store import Store
    from bot.adapters.telegram.app import build_application
    from bot.app import build_desk
    from bot.config import WebhookConfig
    from bot.adapters.telegram.webhook import open_webhook

    harness = BotHarness(api, tmp_path)
    store = Store(tmp_path / "wh.sqlite3")
    application = build_application(harness.config, build_desk(harness.config, harness.dialogue), store)
    await application.initialize()
    await application.bot_data["desk"].start(application)
    url = f"http://127.0.0.1:{unused_tcp_port}/telegram"
    server = await open_webhook(application, WebhookConfig(listen="127.0.0.1", port=unused_tcp_port, url=url, secret_token="s3cret"))
    await application.start()
    try:
        assert api.webhook is not None and api.webhook["url"] == url
        update = api.private_text(ANA, "does it leave a scar")
        assert await api.post_to_webhook(update, secret_token="wrong") == 403
        assert await api.post_to_webhook(update) == 403
        # 90 MB announced: refused from the headers, before any of it is read.
        reader, writer = await asyncio.open_connection("127.0.0.1", unused_tcp_port)
        writer.write(
            b"POST /telegram HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"X-Telegram-Bot-Api-Secret-Token: s3cret\r\nContent-Length: 94371840\r\n\r\n{"
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=5)
        writer.close()
        assert b" 413 " in status_line
        # An update the library cannot read is answered 200 (Telegram would resend it
        # forever otherwise) and skipped; the next patient is answered.
        assert await api.post_to_webhook({"message": {"message_id": 9, "date": 0, "chat": {"id": BEN}}}, secret_token="s3cret") == 200
        assert await api.post_to_webhook(update, secret_token="s3cret") == 200
        answer = await api.wait_for_message(ANA)
        assert answer["text"] == harness.dialogue.knowledge.entry("scars").answer
        assert len(api.sent_messages(ANA)) == 1  # the refused posts were never handled
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{unused_tcp_port}/healthz") as resp:
            assert resp.status == 200 and (await resp.json())["healthy"] is True
    finally:
        await server.stop()
        await application.stop()
        await application.bot_data["desk"].stop()
        await application.shutdown()
        store.close()


@pytest.fixture()
def unused_tcp_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])



async def test_a_very_long_message_is_answered_politely(bot: BotHarness) -> None:
    reply = await bot.say(ANA, "does it leave a scar? " + "and also " * 1200)
    assert reply["text"].startswith(bot.dialogue.texts["too_long"])


async def test_an_edit_during_a_handoff_reaches_staff_and_outside_one_is_ignored(bot: BotHarness, api: FakeBotApi) -> None:
    answer = await bot.say(ANA, "does it leave a scar")
    api.push_update(api.edited_message(ANA, answer["message_id"] - 1, text="does it leave a big scar"))
    await bot.barrier()
    assert bot.sent_to(ANA)[-1]["message_id"] == answer["message_id"]  # no second answer
    await bot.say(ANA, "/human")
    thread = await bot.wait_topic(ANA)
    question = api.private_text(ANA, "typo in thsi")
    api.push_update(question)
    await api.wait_for_message(bot.staff_chat_id, lambda m: m.get("text") == "typo in thsi", thread_id=thread)
    api.push_update(api.edited_message(ANA, question["message"]["message_id"], text="typo in this"))
    await api.wait_for_message(bot.staff_chat_id, lambda m: m.get("text") == "typo in this", thread_id=thread)


async def test_a_429_is_waited_out_and_the_reply_still_arrives(bot: BotHarness, api: FakeBotApi) -> None:
    api.fail_next("sendMessage", status=429, retry_after=1)
    reply = await bot.say(ANA, "does it leave a scar")
    assert reply["text"] == bot.dialogue.knowledge.entry("scars").answer
    assert [c.status for c in api.calls_to("sendMessage")][:2] == [429, 200]


async def test_patient_media_during_a_handoff_is_copied_to_the_topic(bot: BotHarness, api: FakeBotApi) -> None:
    await bot.say(ANA, "/human")
    thread = await bot.wait_topic(ANA)
    photo = [{"file_id": "patient-photo", "file_unique_id": "pp", "width": 64, "height": 64}]
    before = len(bot.sent_to(ANA))
    api.push_update(api.private_message(ANA, photo=photo, caption="my scar today"))
    copied = await api.wait_for_message(bot.staff_chat_id, lambda m: m.get("caption") == "my scar today", thread_id=thread)
    assert copied.get("photo")
    await bot.barrier()
    assert len(bot.sent_to(ANA)) == before  # the bot itself stays quiet during a handoff


async def test_only_staff_may_write_to_patients_and_close_their_conversations(bot: BotHarness, api: FakeBotApi) -> None:
    t = bot.dialogue.texts
    await bot.say(ANA, "/human")
    thread = await bot.wait_topic(ANA)
    await api.wait_for_message(bot.staff_chat_id, thread_id=thread)  # the card
    patient_before = len(bot.sent_to(ANA))
    staff_before = len(api.sent_messages(bot.staff_chat_id, thread))

    # A patient added to the staff group by mistake (a member, not an administrator).
    intruder = 7770001
    api.push_update(api.group_message(bot.staff_chat_id, "hi Ana, it's me", thread_id=thread, from_user_id=intruder))
    notice = await api.wait_for_message(bot.staff_chat_id, thread_id=thread, after=staff_before)
    assert notice["text"] == t["staff_not_staff"]
    api.push_update(api.group_message(bot.staff_chat_id, "/close", thread_id=thread, from_user_id=intruder))
    api.push_update(api.group_message(bot.staff_chat_id, "again", thread_id=thread, from_user_id=intruder))
    await bot.barrier()
    assert len(bot.sent_to(ANA)) == patient_before  # nothing reached her, and she was not handed back
    assert bot.store is not None and bot.store.handoff(ANA).status == "open"
    told = [m for m in api.sent_messages(bot.staff_chat_id, thread) if m.get("text") == t["staff_not_staff"]]
    assert len(told) == 1  # told once, not at every message

    # An administrator posting anonymously (as the group) is staff.
    anonymous = {"id": bot.staff_chat_id, "type": "supergroup", "title": "Staff"}
    api.push_update(api.group_message(bot.staff_chat_id, "Hello Ana, the clinic here.", thread_id=thread, from_user_id=1087968824, sender_chat=anonymous))
    relayed = await api.wait_for_message(ANA, after=patient_before)
    assert relayed["text"] == "Hello Ana, the clinic here."


async def test_staff_can_be_an_explicit_list_of_user_ids(api: FakeBotApi, tmp_path: Path) -> None:
    colleague = 7770002  # not an administrator, but listed
    bot = BotHarness(api, tmp_path, staff_user_ids=frozenset({colleague}))
    await bot.start()
    try:
        await bot.say(ANA, "/human")
        thread = await bot.wait_topic(ANA)
        before = len(bot.sent_to(ANA))
        api.push_update(api.group_message(bot.staff_chat_id, "from the list", thread_id=thread, from_user_id=colleague))
        assert (await api.wait_for_message(ANA, after=before))["text"] == "from the list"
        api.push_update(api.group_message(bot.staff_chat_id, "an admin, not listed", thread_id=thread))
        await bot.barrier()
        assert len(bot.sent_to(ANA)) == before + 1
    finally:
        await bot.stop()


async def test_an_update_the_library_cannot_read_is_skipped_not_a_stall(bot: BotHarness, api: FakeBotApi, caplog: pytest.LogCaptureFixture) -> None:
    # Telegram adds fields and kinds faster than libraries follow; one such update between
    # two patients' messages must cost neither of them their answer.
    api.push_update(api.private_text(ANA, "does it leave a scar"))
    poison = api.push_update({"message": {"message_id": 77, "date": 0, "chat": {"id": BEN}, "text": "a chat without a type"}})
    answer = await bot.say(BEN, "how long is recovery")
    assert answer["text"] == bot.dialogue.knowledge.entry("recovery").answer
    assert any(m["text"] == bot.dialogue.knowledge.entry("scars").answer for m in bot.sent_to(ANA))
    assert any(str(poison) in r.getMessage() and "cannot be read" in r.getMessage() for r in caplog.records)
    assert bot.store is not None and bot.store.update_done(poison)


async def test_a_staff_correction_corrects_the_patients_copy(bot: BotHarness, api: FakeBotApi) -> None:
    await bot.say(ANA, "/human")
    thread = await bot.wait_topic(ANA)
    before = len(bot.sent_to(ANA))
    said = api.group_message(bot.staff_chat_id, "Your consultation is on Friday at 3 pm.", thread_id=thread)
    api.push_update(said)
    copy = await api.wait_for_message(ANA, after=before)
    api.push_update(api.edited_message(bot.staff_chat_id, said["message"]["message_id"], "Your consultation is on Friday at 4 pm."))
    await bot.barrier()
    assert [m["text"] for m in bot.sent_to(ANA)[before:]] == ["Your consultation is on Friday at 4 pm."]  # corrected, not a second message
    assert bot.sent_to(ANA)[before]["message_id"] == copy["message_id"]
