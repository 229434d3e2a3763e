"""Deus Plastic Surgery's SMAS Mini Lift assistant for Telegram."""
