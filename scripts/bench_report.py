"""Write a benchmark's Markdown into its own marked section of a document, keeping the rest.

A section is everything between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`; a document
without that section gets it appended. Each benchmark script owns one section of
docs/benchmarks.md, so `make bench` can refresh the figures without touching the prose.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_section"]


def write_section(path: Path, name: str, markdown: str) -> None:
    """Replace (or append) section `name` of the Markdown file at `path` with `markdown`."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if start in text and end in text:
        before, _, rest = text.partition(start)
        _, _, after = rest.partition(end)
        text = before + block + after
    else:
        text = f"{text.rstrip()}\n\n{block}\n" if text else f"{block}\n"
    path.write_text(text, encoding="utf-8")
