"""Pairwise precision and recall of "same person" decisions, from a truth table and a stitched
identity map, without enumerating pairs: per (person, profile) cell, C(n, 2) pairs agree."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class PairScore:
    precision: float
    recall: float
    linkable_recall: float
    true_pairs: int
    predicted_pairs: int
    agreeing_pairs: int


def _pairs(counts: pd.Series) -> int:
    return int((counts * (counts - 1) // 2).sum())


def pairwise_score(truth: pd.DataFrame, stitched: pd.DataFrame) -> PairScore:
    """truth: person_id, identifier_type, identifier_value; stitched: identifier_type,
    identifier_value, profile_id. Truth identifiers missing from the map count as singletons.
    linkable_recall leaves out people known only by cookies (nothing in any data links two
    cookies of a visitor who never identifies)."""
    keys = ["identifier_type", "identifier_value"]
    joined = truth.merge(stitched[keys + ["profile_id"]], on=keys, how="left")
    missing = joined["profile_id"].isna()
    joined.loc[missing, "profile_id"] = "unmapped:" + joined.loc[missing, "identifier_type"] + ":" \
        + joined.loc[missing, "identifier_value"]
    agreeing = _pairs(joined.groupby(["person_id", "profile_id"]).size())
    true_pairs = _pairs(joined.groupby("person_id").size())
    predicted = _pairs(joined.groupby("profile_id").size())
    identified = joined.groupby("person_id")["identifier_type"].transform(lambda t: (t != "anonymous_id").any())
    linkable = joined[identified]
    return PairScore(
        precision=agreeing / predicted if predicted else 1.0,
        recall=agreeing / true_pairs if true_pairs else 1.0,
        linkable_recall=(_pairs(linkable.groupby(["person_id", "profile_id"]).size())
                         / max(_pairs(linkable.groupby("person_id").size()), 1)),
        true_pairs=true_pairs, predicted_pairs=predicted, agreeing_pairs=agreeing)
