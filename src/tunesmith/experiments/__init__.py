"""Experiments on the embedded default, each arm a real run of the pipeline: `tunesmith demo` (demo.py, its
recipes in recipes/) and `tunesmith experiments playbook` (playbook.py: the claims' table; claims.py: their
decision rules)."""
