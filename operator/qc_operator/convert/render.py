"""Converted QueueConsumers as multi-document YAML, each under comments for what has no equivalent.

Called by `qc-operator convert` (`__main__`); pure: values in, text out.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import yaml

from qc_operator.convert.model import Converted

COMMENT_WIDTH = 108


def _comment(text: str, first: str, rest: str) -> list[str]:
    lines = textwrap.wrap(text, COMMENT_WIDTH - len(first), break_long_words=False, break_on_hyphens=False)
    return [f"{first if i == 0 else rest}{line}" for i, line in enumerate(lines or [""])]


def render(converted: Sequence[Converted]) -> str:
    documents: list[str] = []
    for one in converted:
        lines = _comment(f"Converted by qc-operator convert from {one.source_description}.", "# ", "# ")
        if one.notes:
            lines.append("# No equivalent, or not the same:")
            for note in one.notes:
                lines.extend(_comment(note, "# - ", "#   "))
        body = yaml.safe_dump(one.resource, sort_keys=False, default_flow_style=False, width=COMMENT_WIDTH)
        documents.append("\n".join(lines) + "\n" + body)
    return "---\n".join(documents)
