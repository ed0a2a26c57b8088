"""Database adapters: where the database is, the migration runner, and the store."""
