"""Route modules, one per area; each returns its endpoints for a ``Services`` bundle."""
