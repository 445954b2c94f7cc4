"""Model runtimes behind small interfaces (see engines.interfaces)."""
