"""Who may act as staff: the staff group's administrators (asked of Telegram, trusted for a
while) or the config's staff.user_ids. Anyone can be added to the group by mistake; only
staff may write to patients or close their conversations."""

from __future__ import annotations

import logging
import time
from typing import Any

from telegram import Update
from telegram.constants import ChatMemberStatus
from telegram.error import NetworkError, RetryAfter, TelegramError

log = logging.getLogger(__name__)

# How long Telegram's word that a user is (or is not) an administrator of the staff group
# is trusted: one getChatMember per staff member per five minutes, and someone removed
# from the administrators loses access within five minutes.
STAFF_CHECK_SECONDS = 300.0


class StaffRoster:
    """Answers "is the sender of this update staff?" for the staff group."""

    def __init__(self, staff_chat_id: int, user_ids: frozenset[int]) -> None:
        self.staff_chat_id = staff_chat_id
        self.user_ids = user_ids
        self.bot: Any = None  # the application's Bot, once started
        self._checked: dict[int, tuple[bool, float]] = {}  # user id -> (is staff, when asked)

    async def acts_as_staff(self, update: Update) -> bool:
        """Whether the sender may act as staff: an administrator of the staff group (asked
        of Telegram, trusted for STAFF_CHECK_SECONDS) or one of staff.user_ids. Anyone can
        be added to the group by mistake; only staff may write to patients."""
        query = update.callback_query
        message = update.message or update.edited_message
        if query is None and message is not None and message.sender_chat is not None:
            # An anonymous administrator posts as the group itself; only administrators can.
            return message.sender_chat.id == self.staff_chat_id
        user = query.from_user if query is not None else (message.from_user if message is not None else None)
        if user is None or user.is_bot:
            return False
        if self.user_ids:
            return user.id in self.user_ids
        now = time.monotonic()
        known = self._checked.get(user.id)
        if known is not None and now - known[1] < STAFF_CHECK_SECONDS:
            return known[0]
        try:
            member = await self.bot.get_chat_member(self.staff_chat_id, user.id)
            staff = member.status in (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR)
        except (NetworkError, RetryAfter) as exc:
            log.warning("Could not check whether user %s is staff: %s", user.id, exc)
            return False  # not remembered: the next message asks again
        except TelegramError:
            staff = False  # Telegram's answer ("user not found"...) is an answer: remembered
        self._checked[user.id] = (staff, now)
        return staff
