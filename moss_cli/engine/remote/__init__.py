"""The remote backend: MOSS-Audio behind OpenAI-compatible servers (vLLM, SGLang)."""
