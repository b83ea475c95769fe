"""The local backend: a MOSS-Audio checkpoint run in this process with torch."""
