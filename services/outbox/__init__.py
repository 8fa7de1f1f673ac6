"""The transactional outbox: a service writes its event in the same database transaction as its state change, and
a relay publishes committed events to Kafka. A change and its event never diverge."""
