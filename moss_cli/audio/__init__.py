"""Audio in: sources decoded at 16 kHz, the log-mel front end, voice activity and chunk planning."""
