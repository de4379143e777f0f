"""The severities a finding can have, worst first (a leaf: findings and render both read it)."""

SEVERITIES = ("error", "warning", "info")
SEVERITY_RANK = {"error": 0, "warning": 1, "info": 2}
