"""Governance: users, API tokens and project roles checked inside every service, and the
tamper-evident audit trail every change is recorded on."""
