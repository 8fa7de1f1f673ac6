"""The double-entry ledger: balanced, append-only postings, enforced by the database; `ledger.entry_posted` events."""
