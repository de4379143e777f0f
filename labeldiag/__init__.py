"""labeldiag: diagnose degenerate text classifiers.

    from labeldiag import check_logits, grad_flow, smoke_train, check_predictions, LabelDiagCallback, Report

The names load on first use, so `import labeldiag` (and `labeldiag --help`) stays free of torch.
"""

__version__ = "0.2.0"

_EXPORTS = {
    "check_logits": "labeldiag.api", "grad_flow": "labeldiag.api", "smoke_train": "labeldiag.api",
    "check_predictions": "labeldiag.api", "doctor": "labeldiag.diagnose", "Report": "labeldiag.findings",
    "Finding": "labeldiag.findings", "LabelDiagCallback": "labeldiag.callback", "UsageError": "labeldiag.errors",
    "fix": "labeldiag.api",
}
__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'labeldiag' has no attribute {name!r}")


def __dir__():
    return __all__
