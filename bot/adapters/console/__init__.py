"""The console channel: the same front desk in a terminal."""
