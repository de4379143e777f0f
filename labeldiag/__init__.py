"""labeldiag: diagnose degenerate text classifiers."""

__version__ = "0.1.0"
