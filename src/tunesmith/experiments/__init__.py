"""Experiments on the embedded default: `tunesmith demo` (demo.py) and `tunesmith experiments playbook`."""
