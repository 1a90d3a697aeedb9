"""The state store: SQLite database and cross-process locks."""
