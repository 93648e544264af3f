"""Readers and validators for the data formats users already have ([nova-forge-sdk]).

One module per format family (`cpt`, `chat` for SFT Bedrock/OpenAI, `rft`, `gen_qa`), `detect` to tell
them apart, `sources` for streaming raw records (JSONL, .txt, parquet, saved `datasets` folders), and
`reader` for the public API:

- `read_examples(path, kind=None, skip_invalid=False, report=None) -> Iterator[Example]`
- `validate_file(path, kind=None) -> ValidationReport`
"""

from tunesmith.data.formats.core import KINDS, Example, Issue, Problem, ValidationReport
from tunesmith.data.formats.detect import FORMATS, Format, format_for_row, row_family
from tunesmith.data.formats.reader import read_examples, validate_file
from tunesmith.data.formats.sources import MAX_LINE_BYTES, iter_records

__all__ = [
    "FORMATS",
    "KINDS",
    "MAX_LINE_BYTES",
    "Example",
    "Format",
    "Issue",
    "Problem",
    "ValidationReport",
    "format_for_row",
    "iter_records",
    "read_examples",
    "row_family",
    "validate_file",
]
