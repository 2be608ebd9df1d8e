"""Automation: pipelines (training entry points run in a subprocess), cron schedules and
policies that turn alerts and schedules into retrains and rollbacks."""
