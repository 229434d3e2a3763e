"""The store: SQLite, the one record of conversations, sends and updates."""
