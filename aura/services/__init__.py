"""Application services: where domain code meets the database, Redis and metrics."""
