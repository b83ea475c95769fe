"""Live input: audio transcribed (or its sound events found) while it is still coming."""
