"""Which Telegram chats are a customer's: private ones only.

A conversation is one person's, and verifying it opens their orders and address. In a group
every member would share the account of whoever shared their contact there, so nothing from
a group or channel is routed, stored or verified (``telegram.TelegramChannel.on_elsewhere``),
and nothing is sent to one. These are the tests the channel applies.
"""

from __future__ import annotations

from telegram import Bot, Message, MessageEntity, Update
from telegram.constants import ChatType

from bot.gateway import texts


def is_private(update: Update) -> bool:
    """A one-to-one chat with the bot: the only kind of chat that is one customer's."""
    chat = update.effective_chat
    return chat is not None and chat.type == ChatType.PRIVATE


def private_chat_id(external_id: str) -> int:
    """The chat to send to; never a group's or channel's (ids below zero on Telegram).

    A group conversation linked to a customer before the bot was private-only must not get
    that customer's messages: the send fails (and is retried) rather than reach the group.
    """
    chat_id = int(external_id)
    if chat_id <= 0:
        raise ValueError(f"Telegram chat {chat_id} is not a private chat: not sent")
    return chat_id


def addressed(message: Message, bot: Bot) -> bool:
    """A command for this bot, a mention of it or a reply to it: someone wants to use it."""
    username = (bot.username or "").lower()
    found: dict[MessageEntity, str] = {}
    if message.text:
        found.update(message.parse_entities())
    if message.caption:
        found.update(message.parse_caption_entities())
    for entity, text in found.items():
        if entity.type == MessageEntity.BOT_COMMAND and entity.offset == 0:
            target = text.partition("@")[2].lower()
            if not target or target == username:
                return True
        elif entity.type == MessageEntity.MENTION and text[1:].lower() == username:
            return True
        elif entity.type == MessageEntity.TEXT_MENTION and entity.user is not None \
                and entity.user.id == bot.id:
            return True
    reply = message.reply_to_message
    return reply is not None and reply.from_user is not None and reply.from_user.id == bot.id


def private_only(username: str | None, *, link: bool = True) -> str:
    """The notice in both languages at once: a group's members do not share one language."""
    text = f"{texts.PRIVATE_ONLY.zh}\n{texts.PRIVATE_ONLY.en}"
    return f"{text}\nhttps://t.me/{username}" if link and username else text
