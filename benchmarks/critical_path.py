"""The chain of dbt nodes that set a `dbt build`'s wall time (its critical path).

With several threads, the node seconds of a run add up to more than its wall time; what the wall
time is made of is the chain of nodes each of which had to wait for the one before it. Walking back
from the node that finished last: a node waited for its parents and, in `dbt build`, for the data
tests of its parents; of those, the one that finished last is the link before it. Seconds between
links that no node accounts for are dbt's own work (parsing, compiling, scheduling), reported as
`gap_s`.
"""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path


def _timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def node_spans(run_results: dict) -> dict[str, tuple[datetime, datetime, float]]:
    """unique_id -> (first timing start, last timing end, execution seconds), for timed nodes."""
    spans = {}
    for result in run_results["results"]:
        timing = [t for t in result.get("timing") or [] if t.get("started_at") and t.get("completed_at")]
        if timing:
            spans[result["unique_id"]] = (_timestamp(timing[0]["started_at"]), _timestamp(timing[-1]["completed_at"]),
                                          float(result["execution_time"]))
    return spans


def critical_path(run_results: dict, manifest: dict) -> list[dict]:
    """The nodes of the critical path in run order: node (name without the project prefix), type
    (model, test, seed, ...), seconds (execution) and gap_s (seconds from the previous link's end
    to this node's start)."""
    spans = node_spans(run_results)
    parents, children = manifest.get("parent_map", {}), manifest.get("child_map", {})

    def waited_for(node: str) -> list[str]:
        gates = set()
        for parent in parents.get(node, []):
            gates.add(parent)
            gates.update(c for c in children.get(parent, []) if c.startswith("test.") and c != node)
        return [g for g in gates if g in spans and spans[g][1] <= spans[node][0]]

    chain: list[str] = []
    node = max(spans, key=lambda n: spans[n][1]) if spans else None
    while node is not None:
        chain.append(node)
        gates = waited_for(node)
        node = max(gates, key=lambda n: spans[n][1]) if gates else None
    chain.reverse()
    path, previous_end = [], None
    for node in chain:
        start, end, seconds = spans[node]
        gap = (start - previous_end).total_seconds() if previous_end is not None else 0.0
        path.append({"node": node.split(".", 2)[-1], "type": node.split(".", 1)[0], "seconds": round(seconds, 2),
                     "gap_s": round(max(gap, 0.0), 2)})
        previous_end = end
    return path


def summarise(target: Path, top: int = 15) -> dict:
    """For the last dbt invocation that wrote `target`: the critical path's seconds in models (and
    seeds), in data tests and between nodes, and its `top` slowest models."""
    path = critical_path(json.loads((target / "run_results.json").read_text()),
                         json.loads((target / "manifest.json").read_text()))
    tests_s = sum(p["seconds"] for p in path if p["type"] == "test")
    models_s = sum(p["seconds"] for p in path if p["type"] != "test")
    slowest = sorted((p for p in path if p["type"] == "model"), key=lambda p: -p["seconds"])[:top]
    return {"nodes": len(path), "models_s": round(models_s, 2), "tests_s": round(tests_s, 2),
            "gaps_s": round(sum(p["gap_s"] for p in path), 2),
            "slowest_models": [{"node": p["node"], "seconds": p["seconds"]} for p in slowest]}
