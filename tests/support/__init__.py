"""Helpers shared by the tests: real servers, metric snapshots."""
