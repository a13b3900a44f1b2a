"""Reading what a dbt invocation reported, for tests."""
from __future__ import annotations

import re

from orchestration.dbt_runner import DbtResult


def failed_tests(result: DbtResult) -> dict[str, int]:
    """The failing data tests of a dbt invocation and the number of rows each returned."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"Failure in test (\w+)[^\n]*\n[^\n]*Got (\d+) result",
                                                            result.output)}
