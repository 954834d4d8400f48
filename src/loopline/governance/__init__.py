"""Governance: the tamper-evident audit trail (and, to come, users, tokens and roles)."""
