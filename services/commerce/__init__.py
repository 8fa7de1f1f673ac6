"""Commerce: orders and payments (UPI or card) with idempotency keys; `order.*` and `payment.*` events."""
