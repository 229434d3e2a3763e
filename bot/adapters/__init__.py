"""Adapters: Telegram, SQLite and the console around the pure core (bot/core)."""
