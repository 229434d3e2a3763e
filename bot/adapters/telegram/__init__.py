"""The Telegram channel: python-telegram-bot around the front desk, the outbox and its scheduler."""
