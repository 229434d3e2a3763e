"""The pure core: matching and dialogue decisions on plain data. No Telegram, storage, clock or await here."""
