"""Models: checkpoint catalog (families -> pre/mid/post), the tiny embedded family, loading, LoRA/full."""
