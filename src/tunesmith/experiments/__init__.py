"""Experiments that reproduce what the playbook claims, each arm a real run of the pipeline
(`playbook.py`: the claims' table; `claims.py`: their decision rules)."""
