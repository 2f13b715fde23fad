"""FasterLog: the standalone durable append-only log."""
