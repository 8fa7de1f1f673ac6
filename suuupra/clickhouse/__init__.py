"""The ClickHouse side of analytics: schema migrations and the dashboard panels read from the job's tables."""
