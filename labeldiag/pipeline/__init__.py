"""Command bodies: wire loading, measuring and checks into a Report (the caller renders it; progress is handed
down in Options.progress). Heavy imports live inside."""
