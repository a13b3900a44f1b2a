"""Map a validation error's location to the line of the YAML file it came from."""
from __future__ import annotations

from typing import Any

import yaml


def line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """Line of the YAML node at loc, or of its deepest existing parent (for a missing field)."""
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == part), None)
            if child is None:  # an unknown key: point at the key itself
                child = next((k for k, _ in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is None:
            break
        node = child
    return node.start_mark.line + 1 if node is not None else None
