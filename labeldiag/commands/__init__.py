"""Command bodies: wire loading, measuring, checks and rendering. Heavy imports live inside."""
