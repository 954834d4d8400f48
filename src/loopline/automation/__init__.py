"""Automation: cron schedules and alert triggers that enqueue jobs, and the worker that
runs them under leases, so that several workers share the work without doubling it."""
