"""The one place that shows results: rich console, JSON, PNG plots, progress."""
