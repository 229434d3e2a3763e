"""The matcher's three bands, intents, and messages that must never break it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.core.analysis import HINT
from bot.core.knowledge import KnowledgeBase
from bot.core.matcher import ANSWER_SCORE, SUGGEST_SCORE, Matcher


@pytest.mark.parametrize(
    ("message", "entry"),
    [
        ("does it leave a scar", "scars"),
        ("is the reocvery quick?", "recovery"),  # typo
        ("will there be marks on my face after", "scars"),  # synonym
        ("will my neck be lifted as well", "neck"),
        ("can i combine it with a brow lift", "combined-procedures"),
        ("who is this for", "candidates"),  # not "who is the doctor"
    ],
)
def test_clear_questions_are_answered_directly(matcher: Matcher, message: str, entry: str) -> None:
    match = matcher.match(message)
    assert (match.intent, match.faq_id) == ("faq", entry)
    assert match.score >= ANSWER_SCORE


def test_a_greeting_glued_to_a_question_answers_the_question(matcher: Matcher) -> None:
    match = matcher.match("hi! does it leave a scar")
    assert (match.intent, match.faq_id) == ("faq", "scars")


def test_two_questions_answer_one_and_offer_the_other(matcher: Matcher) -> None:
    match = matcher.match("does it leave a scarr? and how long is recovery")
    assert match.intent == "faq"
    assert {match.faq_id, match.also_asked} == {"scars", "recovery"}


def test_an_ambiguous_message_gets_did_you_mean_choices(matcher: Matcher) -> None:
    match = matcher.match("lift")
    assert match.intent == "clarify"
    assert 1 <= len(match.suggestions) <= 3
    assert match.faq_id is None
    assert SUGGEST_SCORE <= match.score


@pytest.mark.parametrize(
    "message",
    [
        "price?",
        "will i be asleep during the surgery",
        "what are the risks",
        "whats the weather like in seoul today",
        "qwertyuiop zxcv",
        "¿El lifting deja cicatrices visibles en la cara?",  # another language: staff, not a guess
        "are you open on sundays?",  # opening hours, not a booking ("open" and "opening" stem alike)
    ],
)
def test_what_the_document_does_not_answer_falls_back(matcher: Matcher, message: str) -> None:
    match = matcher.match(message)
    assert match.intent == "fallback"
    assert match.faq_id is None


@pytest.mark.parametrize(
    ("message", "intent"),
    [
        ("can i make an appointment for next week", "booking"),
        ("connect me to a human pls", "human"),
        ("hello there", "greeting"),
        ("thank u so much 🙏", "thanks"),
        ("thanks, i'd like to book a consultation", "booking"),
        ("is there an opening on saturday", "booking"),
        ("i'd rather discuss this with a nurse, is anyone available", "human"),
        ("i had my lift 2 days ago and the wound keeps bleeding", "urgent"),
        ("since last night my face is swollen on one side and really hurts, operated on monday", "urgent"),
        ("had the lift yesterday and now im struggling to breathe", "urgent"),
        ("blood keeps soaking through the bandage, what do i do", "urgent"),
        ("blood soaking through the bandage and it wont stop", "urgent"),  # no "my", but only a wound has a bandage
        ("post op day 2, sudden severe pain on the left side", "urgent"),
        ("after my smas lift my lips look blue and i feel really dizzy", "urgent"),
        ("ok let's do it, when can i come", "booking"),
        ("whats the best kbbq near you lol", "fallback"),
        # ordinary asymmetry "since my 30s" is not happening now
        (
            "I have quite an asymmetric face, one side droops more than the other since my 30s. "
            "Would the surgery be designed differently for me, or is it a standard operation?",
            "faq",
        ),
        ("my mouth droops on one side since yesterday after my lift", "urgent"),
        ("How do I make a reservation? I want to come in and talk to the doctor about the SMAS lift.", "booking"),
    ],
)
def test_intents(matcher: Matcher, message: str, intent: str) -> None:
    assert matcher.match(message).intent == intent


@pytest.mark.parametrize(
    "message",
    [
        "will i bleed a lot after the surgery?",
        "i take blood thinners, can i still have surgery",
        "is swelling normal in general",
        "will the stitches bleed?",
    ],
)
def test_questions_about_risks_are_not_emergencies(matcher: Matcher, message: str) -> None:
    assert matcher.match(message).intent != "urgent"


@pytest.mark.parametrize(
    "message",
    [
        "",
        "   \n\t ",
        "scar " * 2000,
        "x" * 10_000,
        "😀😀😀🙏",
        "수술 후 흉터가 남나요?",
        "هل تترك ندبة؟",
        "\x00\x01\x02 scar \x1b[31m",
        "\ud800 lone surrogate",
    ],
)
def test_odd_input_never_crashes_and_never_gets_a_confident_wrong_topic(matcher: Matcher, message: str) -> None:
    match = matcher.match(message)
    assert match.intent in {"faq", "clarify", "fallback"}
    assert 0 <= match.score <= 100
    if match.intent == "faq":
        assert match.faq_id == "scars"  # the only topic any of these mention


def test_empty_messages_are_flagged_as_empty(matcher: Matcher) -> None:
    assert matcher.match("   ").empty
    assert not matcher.match("😀").empty


@pytest.mark.parametrize(
    "message",
    ["how much would the lift with fat grafting cost", "is the deep plane part risky?", "will i be asleep for the fat transfer"],
)
def test_a_medical_or_money_fact_is_never_answered_from_a_nearby_topic(matcher: Matcher, message: str) -> None:
    match = matcher.match(message)
    assert match.intent == "fallback"
    assert match.topic in {"price", "risks", "anesthesia"}


def test_how_much_downtime_is_a_recovery_question_not_a_price(matcher: Matcher) -> None:
    assert matcher.match("how much downtime is there").faq_id == "recovery"


def test_a_correctly_spelt_word_is_not_corrected_into_faq_vocabulary(matcher: Matcher) -> None:
    # "plain" is one letter from "pain", a subject the bot must never answer;
    # the common-words list keeps it what the patient wrote.
    match = matcher.match("what is the smas mini lift in plain terms")
    assert (match.intent, match.faq_id) == ("faq", "what-is-smas-mini-lift")
    assert matcher.analyzer.terms("plain") != matcher.analyzer.terms("pain")


@pytest.mark.parametrize(
    ("message", "entry"),
    [
        # "hurts" and "home" only tell the story; the question is elsewhere.
        (
            "At 31 my cheeks look deflated and droopy. My mom says I look older than before, which honestly hurts. "
            "Is this what the SMAS Mini Lift is for?",
            "what-is-smas-mini-lift",
        ),
        (
            "A friend did a full facelift at another clinic and was hiding at home for ages. Is the mini lift recovery easier than that?",
            "recovery",
        ),
    ],
)
def test_a_subject_named_only_in_the_story_does_not_stop_the_answer(matcher: Matcher, message: str, entry: str) -> None:
    match = matcher.match(message)
    assert match.intent != "fallback"
    assert match.faq_id == entry or entry in match.suggestions


@pytest.mark.parametrize(
    ("message", "topic"),
    [
        ("I'm 45 and my jowls bother me. How much is the mini lift?", "price"),
        ("total cost incl. fat grafting?", "price"),  # the cost sits in a clause that ends with a full stop
        ("my sister had it last year. does it hurt?", "pain"),
    ],
)
def test_a_subject_named_in_the_question_still_falls_back(matcher: Matcher, message: str, topic: str) -> None:
    match = matcher.match(message)
    assert (match.intent, match.topic) == ("fallback", topic)


def test_a_several_word_cue_counts_only_as_a_whole_phrase(matcher: Matcher) -> None:
    # "go home same day" names the hospital stay; "home" alone does not.
    assert matcher.match("can i go home same day after the lift").topic == "hospital-stay"
    assert matcher.match("will I look natural when I get home to my family?").intent == "faq"


def test_an_age_in_the_twenties_or_thirties_points_to_younger_patients(matcher: Matcher) -> None:
    # The document speaks of people in their 20s and 30s; "at 30" is how patients say it.
    (young,) = matcher.analyzer.terms("im young")
    assert HINT + young in matcher.analyzer.terms("im 31")  # implied, so weighed less than the word
    assert HINT + young not in matcher.analyzer.terms("im 52")
    match = matcher.match("my friends think a facelift at 30 is crazy. is it tho")
    assert match.faq_id == "younger-patients" or "younger-patients" in match.suggestions


@pytest.mark.parametrize(
    ("message", "intent"),
    [
        (
            "i'd rather talk to the doctor directly, can he call me? I had a bad experience with a coordinator "
            "at another clinic who just pushed packages at me. I want to hear from the surgeon himself",
            "human",
        ),
        ("Long story short, my sister had hers done with you and loved it. Can I book a consultation for next week?", "booking"),
    ],
)
def test_a_request_in_the_asking_clause_is_heard_through_the_story(matcher: Matcher, message: str, intent: str) -> None:
    assert matcher.match(message).intent == intent


def test_a_booking_word_in_the_story_does_not_hide_the_question(matcher: Matcher) -> None:
    message = (
        "37, two kids, tired face. my jaw used to be my best feature and now its kinda gone. "
        "before i even think about booking anything - what does the mini lift actually fix?"
    )
    match = matcher.match(message)
    assert match.intent != "booking"
    assert match.faq_id == "what-is-smas-mini-lift" or "what-is-smas-mini-lift" in match.suggestions


@pytest.mark.parametrize(
    "message",
    [
        "since the surgery i cant move one side of my lips and it is getting worse",  # a nerve
        "the skin near my ear is turning dark and black, surgery was 5 days ago",  # skin dying
        "feel hot and shivering, incision is red and leaking, had surgery last week",  # infection
    ],
)
def test_signs_that_cannot_wait_are_urgent(matcher: Matcher, message: str) -> None:
    assert matcher.match(message).intent == "urgent"


def test_a_swollen_face_in_a_story_from_years_ago_is_not_urgent(matcher: Matcher) -> None:
    message = (
        "is the recovary long like a full facelift or shorter? my aunt had a full one 10 years ago and she was "
        "locked at home for ages with a swollen face, i really cant do that"
    )
    match = matcher.match(message)
    assert (match.intent, match.faq_id) == ("faq", "recovery")


def test_cut_open_is_about_incisions_not_a_booking(matcher: Matcher) -> None:
    match = matcher.match("which part of my face gets cut open?")  # "open" stems like "opening", a free slot
    assert match.intent != "booking"
    assert match.faq_id == "scars" or "scars" in match.suggestions


@pytest.mark.parametrize("message", ["someone told me bleeding is common", "do people bleed a lot after this"])
def test_hearsay_and_other_peoples_bleeding_is_a_question_about_risks(matcher: Matcher, message: str) -> None:
    match = matcher.match(message)
    assert (match.intent, match.topic) == ("fallback", "risks")


def test_of_two_asking_clauses_the_one_the_whole_message_supports_wins(matcher: Matcher) -> None:
    message = (
        "My dermatologist in Sydney mentioned the SMAS when I asked about my jowls, but honestly I didn't follow "
        "what she meant. Where is this layer and what does it actually do in the face?"
    )
    match = matcher.match(message)
    assert (match.intent, match.faq_id) == ("faq", "smas-layer-depth")  # not "neck", from "what does it do in the face"


def test_an_age_written_with_y_slash_o_is_an_age_not_a_why(matcher: Matcher) -> None:
    assert matcher.analyzer.terms("25 y/o") == matcher.analyzer.terms("25yo")
    assert matcher.match("25 y/o here, face already drooping, lift or no?").faq_id == "younger-patients"


def test_a_generic_question_after_a_story_is_read_with_the_story(matcher: Matcher) -> None:
    # The asking clause alone ("the same idea or something else?") once answered
    # combined-procedures; the story about threads makes it the difference question.
    message = "i had threads put in last year and honestly it lasted like 6 months. is smas basically the same idea or something else?"
    match = matcher.match(message)
    assert match.faq_id == "difference-from-simple-lift" or "difference-from-simple-lift" in match.suggestions


@pytest.mark.parametrize(
    ("message", "entry"),
    [
        ("does the doctor personally examine my face before deciding anything", "consultation"),
        ("my face is drooping even tho i use expensive creams every day, why??", "cause-of-sagging"),  # no price
        ("do i need a long break from everything after the operation", "recovery"),  # not the operation's length
        ("what part of the face actually gives way when we get older", "cause-of-sagging"),
    ],
)
def test_the_right_entry_is_at_least_offered(matcher: Matcher, message: str, entry: str) -> None:
    match = matcher.match(message)
    assert match.intent in ("faq", "clarify")
    assert match.faq_id == entry or entry in match.suggestions


def test_asking_about_the_surgeon_as_a_man_is_not_about_men_as_patients(matcher: Matcher) -> None:
    match = matcher.match("is the surgeon a man or a woman")
    assert match.faq_id is None and "candidates" not in match.suggestions


# Ways of asking that patients used and the matcher once got wrong.
@pytest.mark.parametrize(
    ("message", "entry"),
    [
        ("superficial musculo aponeurotic system... can u say that in human words lol", "smas-layer-depth"),
        ("will the doctor design it specifically for my face", "consultation"),  # the doctor, not a request for one
        ("out of action for long?", "recovery"),
        (
            "I'd like to fix everything at once because I don't want several downtimes. My eye bags and my heavy "
            "forehead bother me as much as my jawline. Can these be done together with the SMAS lift?",
            "combined-procedures",  # "go home" + "same day" (a hospital stay) must not be read across two clauses
        ),
        ("where is the smas located in the face", "smas-layer-depth"),  # not the clinic's location
        ("how does the pre-op consultation work", "consultation"),
        ("my aunt's facelift made her look surprised all the time, i dont want that", "natural-results"),
        ("how natural does it look afterwards", "natural-results"),
        ("does the result look 3d or kind of flat", "natural-results"),  # the document: natural and three-dimensional
        # the story before the comma names youtube (a contact detail); the question comes after it
        ("someone on youtube mentioned 'deep plane', how does that fit with your mini lift", "deep-plane-technique"),
        ("31f scars?", "scars"),  # an age is context: it must not outweigh the topic
        ("im 26, is it normal to already need a lift", "younger-patients"),  # "normal" as in usual
    ],
)
def test_questions_in_everyday_words_are_answered(matcher: Matcher, message: str, entry: str) -> None:
    match = matcher.match(message)
    assert (match.intent, match.faq_id) == ("faq", entry)


# Answers, requests, emergencies and fallbacks from the evaluation sets' misses (tests/eval/).
@pytest.mark.parametrize(
    ("message", "intent", "entry"),
    [
        ("heyy quick q whats a mini smas lift", "faq", "what-is-smas-mini-lift"),  # greeting + question, no "?"
        ("consult march 15 pls", "booking", None),  # "15" beside a month is a date, not an age
        ("let's set a date for the consultation. Evenings work best for me", "booking", None),
        ("what time do u close on saturdays", "fallback", None),
        ("who is it NOT for", "faq", "candidates"),
        ("will i sleep during the surgery", "fallback", None),  # anaesthesia, while "zero sleep" is life
        ("i dont want to look like a different person after", "faq", "natural-results"),
        (
            "i have questions a bot cant answer, i want to talk to the doctor himself. "
            "i had a thread lift that went wrong 2 years ago and one side of my face still feels weird",
            "human",
            None,
        ),
        ("is a cheap clinic ok for smas or risky", "faq", "choosing-a-clinic"),  # risks' `unless`: choosing a clinic
        ("is the surgery at your clinic risky", "fallback", None),  # still a question about risks
        ("what other surgeries pair well with this", "faq", "combined-procedures"),
        ("do i need someone to pick me up after surgery", "fallback", None),  # not "pick" a clinic
        ("got my chin reduced 2 yrs ago and now the skin along the jaw is loose", "faq", "sagging-after-contour-surgery"),
        ("how much is lower blepharoplasty on its own", "fallback", None),  # a price, though it names a topic
        ("do you do non surgical stuff like hifu", "fallback", None),  # whether the clinic offers it: staff
        ("do you have english speaking staff", "fallback", None),  # an interpreter, not a request for staff
        ("i want subtle results, not a new face", "faq", "natural-results"),  # "new" is not "news"
        ("what makes it different from the regular facelift my mom got 10 yrs ago", "faq", "difference-from-simple-lift"),
        ("cant move the corner of my mouth since my surgery yesterday, is that normal??", "urgent", None),
        ("my cheek turned dark purple and feels cold, had surgery 2 days ago", "urgent", None),
        ("scared of ending up with that tight joker face", "faq", "natural-results"),  # "scared" is not "scar"+"ed"
        ("can it make me younger but still me", "faq", "natural-results"),
        ("hello, is this deus clinic?", "greeting", None),
        ("wound smells bad and im feverish, had my lift last week", "urgent", None),
        ("recommend a good restaurant near the clinic?", "fallback", None),  # off-topic is decisive
        (
            "I'm comparing 4 clinics in Seoul right now and all their websites look the same to me. "
            "What should I actually pay attention to when choosing where to do a SMAS lift?",
            "faq",
            "choosing-a-clinic",  # "pay attention" is no payment
        ),
        (
            "My friend's lift left her cheeks looking flat and kind of stretched. Will my face look 3D and defined "
            "after yours? I want contours, not a pancake.",
            "faq",
            "natural-results",  # "contours" is an outline, not contouring surgery
        ),
        ("everyone's face is different no? do you do the same thing for everybody", "faq", "consultation"),
        ("Planning this around my daughter's wedding in 4 months. Is recovery long for this surgery?", "faq", "recovery"),
        ("how long does the surgery take", "fallback", None),  # the operation's length, which the document lacks
        ("is the consultation free", "fallback", None),
        ("i'm ready, how do i get a spot", "booking", None),
        ("hey, is this the deus clinic chat?", "greeting", None),
        ("do you do lipo on the stomach", "fallback", None),
        ("where exactly is this smas layer located", "faq", "smas-layer-depth"),
        ("great, that helped a lot", "thanks", None),
        ("i wanna come for consultation, what dates are open", "booking", None),
        ("need to move my consultation to next week", "booking", None),
        ("do you analyse my face before deciding how to lift it", "faq", "consultation"),
        ("will i be stuck at home for ages after the op", "faq", "recovery"),  # "ages" is no age
        ("who is this lift for", "faq", "candidates"),
        (
            "Last clinic I visited did a 5 min consult and just pushed a package on me. "
            "How thorough is the consultation with you?",
            "faq",
            "consultation",  # "visited" in the story books nothing
        ),
        ("how long will i be in surgery", "fallback", None),
        ("what will the doctor check when i come in for consultation", "faq", "consultation"),  # no booking
        ("i want to schedule the surgery itself", "booking", None),
        ("severe pain getting worse after my facelift, painkillers not helping", "urgent", None),
        ("my throat feels like its closing up, had the lift on friday", "urgent", None),
        ("My mother had her surgery with you yesterday and now she's very confused and keeps vomiting.", "urgent", None),
        # ordinary asymmetric sagging, not a nerve sign
        ("I have a pretty asymmetric face, one side droops more than the other. Do you plan the design individually?", "faq", "consultation"),
        ("mini lift = facelift? im confused", "faq", "what-is-smas-mini-lift"),  # "confused" alone is no emergency
        ("hey bot 👋", "greeting", None),
        ("prefer an actual person tbh", "human", None),
        ("after chin shaving my jawline got saggy, is the mini lift meant for that?", "faq", "sagging-after-contour-surgery"),
        ("I'm 60, is it too late for me?", "faq", "candidates"),
        ("my lips are drooping on one side and i cant close my eye, had smas lift 4 days ago", "urgent", None),
        ("after op severe pain in face getting worse every hour, painkiller not helping", "urgent", None),
        ("hi there, anyone online?", "greeting", None),
        ("do you also do thread lifts", "fallback", None),  # whether the clinic offers it
        ("want reserve date for the surgery itself", "booking", None),
        ("How long does the operation itself take", "fallback", None),
        ("im man 45, can i also do it?", "faq", "candidates"),
        ("What kind of person is the mini lift best for?", "faq", "candidates"),
        ("Ok I've read enough and my husband agreed too 😅 let's set a date for the consultation. Evenings work best for me", "booking", None),
        ("there's a hard painful lump growing under my cheek since yesterday, surgery was on monday", "urgent", None),
        ("my lips and face swelled up right after taking the pills from the clinic and it's hard to swallow", "urgent", None),
        ("my vision is blurry and I have a terrible headache since the operation this morning", "urgent", None),
        ("blood keeps seeping out near my ear stitches, 1 day post op, is that ok??", "urgent", None),
        ("merci beaucoup 🙏", "thanks", None),
        ("45 y/o woman, jowls forming. suitable?", "faq", "candidates"),  # English, though few words are ours
        ("¿Hacen lifting facial en su clínica? Quiero información", "fallback", None),  # still another language
        ("heard facelifts take forever to heal. yours?", "faq", "recovery"),  # no question of years
        ("id like to get a date for the surgery", "booking", None),
        ("consult on the 14th?", "booking", None),  # "14th" is a day of the month
        ("who's it for", "faq", "candidates"),
        ("how do i vet a surgeon", "faq", "choosing-a-clinic"),
        ("can you help me with my tax return lol", "fallback", None),
        ("how does the doctor decide the direction of the lift for my face", "faq", "consultation"),  # not choosing a clinic
        ("I have a complicated question, can a doctor answer me personally", "human", None),
        ("my pet is sick, can you recommend a veterinarian", "fallback", None),
        ("scared of looking like a cat after lol, those stretched faces", "faq", "natural-results"),
        ("which doctor would operate on me?", "fallback", None),  # who the surgeon is: staff
        ("can i see the doctor on monday", "booking", None),
        ("my eye won't close properly since the surgery yesterday", "urgent", None),
        ("26 days after my mid face lift the upper mouth won't move and my right eye is still not blinking", "urgent", None),
        ("large black and blue swelling behind my ear since the drain came out, painful, is it a hematoma?", "urgent", None),
        ("is a hematoma a common risk of a facelift?", "fallback", None),  # asks about a risk: staff, no emergency
        ("I'm from Canada and have private health insurance through my employer. Would it cover any of this?", "fallback", None),
        ("will the scar be covered by my hair", "faq", "scars"),  # covered: hidden, not paid
        ("hi what exactly is the smas mini lift", "faq", "what-is-smas-mini-lift"),  # a greeting, then a question
        ("ok got it, bye!", "thanks", None),
        # "help" in a question is no plea, and "hot stoves" no symptom after surgery.
        (
            "I'm 50 and a chef, always standing over hot stoves. My cheeks have dropped and I have deep folds "
            "next to my nose. Would the deep plane version help both at once?",
            "faq",
            "deep-plane-technique",
        ),
        ("severe pain getting worse, painkillers not working, had my smas lift monday", "urgent", None),
        ("operated 3 days ago, tonight my cheek blew up like a balloon with throbbing pain, what do I do", "urgent", None),
        ("Thank you very much for explaining, have a nice day", "thanks", None),  # a courtesy, not a question
        ("do you take fat from my belly to put in my face?", "faq", "fat-grafting-liposuction"),  # the donor site
        ("do you do liposuction on my belly", "fallback", None),  # body liposuction: not in the document
        ("does it tighten the loose skin under my chin too", "faq", "neck"),
        ("is the recovery painful?", "faq", "recovery"),  # a detail of a covered topic
        ("does it hurt", "fallback", None),  # pain alone: the document says nothing
        ("is the recovry painful", "faq", "recovery"),  # a misspelling the FAQ's own phrasings use
        ("is it scarless?", "faq", "scars"),
        # "on the table" is during the operation, not how long it takes.
        ("can you fill the sunken spots on my face with my own fat while I'm already on the table", "faq", "fat-grafting-liposuction"),
        ("how long do the swelling and bruising last", "faq", "recovery"),  # a detail of recovery
    ],
)
def test_what_patients_write_gets_the_right_outcome(matcher: Matcher, message: str, intent: str, entry: str | None) -> None:
    match = matcher.match(message)
    assert (match.intent, match.faq_id) == (intent, entry)


def test_a_request_for_a_personal_verdict_is_never_answered_with_the_wrong_entry(matcher: Matcher) -> None:
    # "would you operate on me" reads as "who is it for" to the ranking and as a personal
    # verdict (staff's to give) to the model trained on real questions; either is fine,
    # any other entry is not. Real questions showed that letting the ranking overrule a
    # leaning model here answered more of them wrongly (see bot/core/matcher.py).
    match = matcher.match("F 44, jowls are showing, would you operate on me")
    assert (match.intent, match.faq_id) in (("faq", "candidates"), ("fallback", None)) or (
        match.intent == "clarify" and "candidates" in match.suggestions
    ), match


def test_an_example_teaches_a_new_way_of_asking(knowledge: KnowledgeBase) -> None:
    message = "pelican pouch too?"  # words no FAQ file uses
    assert Matcher(knowledge).match(message).intent == "fallback"
    taught = with_examples(knowledge, {"neck": ("can you fix my pelican pouch",)})
    match = Matcher(taught).match(message)
    assert (match.intent, match.faq_id) == ("faq", "neck")


def test_a_word_in_a_few_stories_does_not_stop_telling_its_topic(knowledge: KnowledgeBase) -> None:
    # "candidate" tells the candidates entry from the rest; a handful of stories
    # under other entries that happen to use it must not make it a common word.
    stories = {
        "scars": tuple(f"my friend {n} was a good candidate and healed well, will I have a scar" for n in "abcde"),
        "recovery": tuple(f"the surgeon {n} said I'm a good candidate, how long is recovery" for n in "abcde"),
    }
    match = Matcher(with_examples(knowledge, stories)).match("who is this for")
    assert (match.intent, match.faq_id) == ("faq", "candidates")


def with_examples(knowledge: KnowledgeBase, extra: dict[str, tuple[str, ...]]) -> KnowledgeBase:
    examples = dict(knowledge.examples)
    for label, messages in extra.items():
        examples[label] = examples.get(label, ()) + messages
    return replace(knowledge, examples=examples)


def test_words_an_example_taught_are_not_a_foreign_language(knowledge: KnowledgeBase) -> None:
    taught = with_examples(knowledge, {"neck": ("can you fix my turkeyneck with platysmaplasty",)})
    match = Matcher(taught).match("turkeyneck platysmaplasty possible?")
    assert (match.intent, match.faq_id, match.topic) == ("faq", "neck", None)
