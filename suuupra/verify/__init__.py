"""Independent computations of what the jobs write, from the events as Kafka holds them, to check their results."""
