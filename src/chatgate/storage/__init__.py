"""Storage adapters: tables, repositories, engine and migrations."""
