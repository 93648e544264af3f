"""Training: `pipeline.train` runs a recipe's stages in order, each from the previous one's best.

A stage is `cpt.run`, `sft.run` or `rft.run`: the technique file builds its `Technique` (datasets, trainer,
selection metric, summary; `stage.Technique`) and hands it to `stage.run_stage`, the machinery they share:
schedule (`schedule.py`), callbacks (`callbacks.py`: metrics, checkpoints, signals, progress), monitoring
(`monitor.py`) and the export of the best checkpoint. `data.py` prepares each stage's mixed data first.
"""
