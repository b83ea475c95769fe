"""Engines answer requests about audio: the contract (base), the backends (local, remote), the factory."""
