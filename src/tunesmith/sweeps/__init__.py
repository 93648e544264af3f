"""Sweeps: forgetting-aware search over mix ratio, learning rate and LoRA (`tunesmith sweep`), on Optuna.

The files, in the order a sweep uses them: `space.py` (the space YAML: parse, validate, grid, sample),
`presets.py` (the playbook's spaces), `storage.py` (the study database, heartbeat and retry), `workers.py`
(claim, run and tell trials), `trial.py` (one trial = the recipe plus overrides through the normal
training and evaluation), `pruning.py` (successive halving on a constraint-aware scalar), `objectives.py`
(domain gain, general retention, Pareto front, the recommendation rule), `live.py` (one line per trial,
trials.csv), `report.py` (sweep.json, --export), `command.py` (the command). docs/sweeps.md explains it.
"""
