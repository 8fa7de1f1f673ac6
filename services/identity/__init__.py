"""Identity: registration, login, sessions and the user profile; `user.*` events through the outbox."""
