"""What the tests share: stand-in servers, tiny checkpoints, recordings, browsers."""
