"""data/domain."""
