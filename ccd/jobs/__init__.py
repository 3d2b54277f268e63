"""Scheduled work (APScheduler): retention, statistics, campaigns."""
