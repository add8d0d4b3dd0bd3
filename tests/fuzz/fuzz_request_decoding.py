"""Coverage-guided fuzzing of the edge's request decoding path (atheris + libFuzzer).

    .venv/bin/python tests/fuzz/fuzz_request_decoding.py -max_total_time=120 build/fuzz/corpus

Each input is one request in the text framing of tests/fuzz/decoding.py, run through the
router, the query parser, the body decoder and the path variables exactly as the gateway
runs them. A crash is any exception other than a clean 4xx EdgeError: a request the edge
would answer with 500. libFuzzer writes new inputs into the first corpus directory, so give
it a scratch copy of tests/fuzz/corpus (as `make fuzz` does), not the committed one.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

# Instrument what decodes a request (and the JSON mapping under it), so libFuzzer sees
# which branches an input reaches; everything else runs uninstrumented.
with atheris.instrument_imports(
    include=["services.edge", "google.protobuf.json_format", "urllib.parse", "tests.fuzz"]
):
    from tests.fuzz.decoding import Decoding, build_decoding

_decoding: Decoding | None = None


def TestOneInput(data: bytes) -> None:
    assert _decoding is not None
    _decoding.check(data)


def main() -> None:
    global _decoding  # noqa: PLW0603 (built once, before libFuzzer starts calling)
    with tempfile.TemporaryDirectory(prefix="fuzz-library-") as work_dir:
        _decoding = build_decoding(Path(work_dir))
        atheris.Setup(sys.argv, TestOneInput)
        atheris.Fuzz()


if __name__ == "__main__":
    main()
