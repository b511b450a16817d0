"""Infrastructure: the database engine and the Redis connections."""
