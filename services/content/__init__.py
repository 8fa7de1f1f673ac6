"""Content: instructors create, revise and publish course content; `content.*` events through the outbox."""
