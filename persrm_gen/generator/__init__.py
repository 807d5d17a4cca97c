"""LLM access: one request interface per provider, with one client above them all."""
