"""Curated general data for real model families: open Hub datasets per general category.

`catalog.py` maps each category to its dataset (id, config/split, license, column mapping); `load.py`
streams the rows from the Hub or reads them from an offline mirror folder (`tunesmith data mirror`), checks
at plan time that every category can be served, and builds the mix sources. The embedded tiny family keeps
its built-in world data (`tunesmith.data.general`): curated rows are for models that can read real text.
"""

from tunesmith.data.curated.catalog import CATALOG, CURATED_CATEGORIES, CuratedDataset

__all__ = ["CATALOG", "CURATED_CATEGORIES", "CuratedDataset"]
