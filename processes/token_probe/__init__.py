"""Probes that record a value once per token (docs/graph.md, "Streaming, sessions and probes")."""
