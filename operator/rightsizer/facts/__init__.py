"""Versioned data tables: GPU products, vLLM accounting profiles, the built-in model catalog."""
