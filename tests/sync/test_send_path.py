"""The per-page shortcuts of the send path give what the general code gives: sent_fields made once
per payload key set, results matched to rows by position or by key, the Klaviyo profile written
as bytes around its attributes, and the garbage collector's thresholds restored after sending."""
from __future__ import annotations

import gc

import orjson
import pytest

import syncs.engine as engine_module
from syncs.destinations.base import Acknowledged, Page, RowResult, page_payloads, payload_fields
import syncs.destinations.klaviyo as klaviyo_module
from syncs.destinations.klaviyo import KlaviyoClient, KlaviyoList, batches, profile_json
from syncs.engine import acknowledged, rare_collections, sort_page, with_sent_fields
from syncs.sent_fields import carried


def test_sent_fields_per_key_set_equal_carried_for_every_row(monkeypatch):
    monkeypatch.setattr(engine_module, "SHAPES_KEPT", 2)  # three key sets: the kept ones are dropped once
    payloads = ['{"b":1,"a":2}', '{"a":null,"b":3}', None, '{"c":"x"}', "[1,2]", "not json", '{"a":1,"b":2}', "{}"]
    pages = [[{"key": f"k{p}{i}", "payload": text} for i, text in enumerate(payloads)] for p in range(2)]
    expected = [[carried(row, None) for row in page] for page in pages]
    assert [[row["sent_fields"] for row in page] for page in with_sent_fields(pages)] == expected
    assert expected[0][:4] == ['["a","b"]', '["a","b"]', "[]", '["c"]']


def test_results_are_matched_by_position_when_in_order_else_by_key():
    batch = [{"key": "a"}, {"key": "b"}, {"key": "c"}]
    in_order = [RowResult("a", True), RowResult("b", False, code="x"), RowResult("c", True)]
    assert [(row["key"], r.key) for row, r in acknowledged(batch, in_order)] == [("a", "a"), ("b", "b"), ("c", "c")]
    shuffled = [RowResult("c", True), RowResult("a", True)]  # fewer, out of order: each still finds its row
    assert [(row["key"], r.key) for row, r in acknowledged(batch, shuffled)] == [("c", "c"), ("a", "a")]
    swapped = [RowResult("b", True), RowResult("a", True), RowResult("c", True)]
    assert [(row["key"], r.key) for row, r in acknowledged(batch, swapped)] == [("b", "b"), ("a", "a"), ("c", "c")]


def _page() -> list[dict]:
    return [{"key": k, "has_state": k == "c", "op": "update" if k == "c" else "add", "row_hash": f"h{k}",
             "destination_id": f"old_{k}"} for k in ("a", "b", "c")]


def _sorted(page: list[dict], results) -> tuple:
    ok, new, bad, adds = sort_page(page, results)
    return [(r["key"], r["destination_id"]) for r in ok], [(r["key"], r["destination_id"]) for r in new], bad, adds


def test_a_page_acknowledged_whole_is_sorted_as_its_results_one_by_one():
    """base.Acknowledged of the batch's keys in order (the shortcut) sorts as the same RowResults
    listed; out of order, or of fewer keys, only the keys it names are acknowledged."""
    whole = Acknowledged(["a", "b", "c"])
    assert list(whole) == [RowResult("a", True), RowResult("b", True), RowResult("c", True)] == whole
    assert (whole[1], whole[1:]) == (RowResult("b", True), [RowResult("b", True), RowResult("c", True)])
    expected = _sorted(_page(), list(whole))
    assert expected == ([("c", None)], [("a", None), ("b", None)], [], 2)  # ids: what the destination said
    assert _sorted(_page(), whole) == expected
    assert _sorted(_page(), Acknowledged(["c", "a", "b"])) == expected
    assert _sorted(_page(), Acknowledged(["b", "c"])) == ([("c", None)], [("b", None)], [], 1)
    assert _sorted(_page(), Acknowledged(["a", "b"])) == ([], [("a", None), ("b", None)], [], 2)
    assert _sorted(_page(), Acknowledged([])) == ([], [], [], 0)


def test_klaviyo_acknowledges_a_job_whole_only_when_every_row_was_imported(sandbox):
    client = KlaviyoClient(f"{sandbox.base_url}/klaviyo", "sandbox-token", "2026-07-15", poll_seconds=0.01,
                           rate_limits=False)
    destination = KlaviyoList(client, "whole_jobs")
    rows = [{"key": f"k{i}", "email": f"k{i}@example.com", "payload": None} for i in range(3)]
    imported = destination.add(rows)
    assert isinstance(imported, Acknowledged) and imported.keys == ["k0", "k1", "k2"]
    bad = {"key": "k_bad", "email": None, "phone": "12345", "payload": None}  # not E.164: rejected
    mixed = destination.add(rows[:2] + [bad])
    assert not isinstance(mixed, Acknowledged)
    assert [(r.key, r.ok) for r in mixed] == [("k0", True), ("k1", True), ("k_bad", False)]


@pytest.mark.parametrize("row", [
    {"key": "k1", "email": "a@x.com", "phone": "+15005550006", "first_name": "Zoë", "last_name": "L",
     "payload": '{"tier":"gold","n":{"x":null},"s":"\\u00e9\\""}'},
    {"key": "k2", "email": "", "phone": None, "payload": '{"a":1,"b":null}'},
    {"key": "k3", "payload": '{"only":null}'},
    {"key": "k4", "payload": None}, {"key": "k5", "payload": "[1]"}, {"key": "k6", "payload": "{}"},
])
def test_profile_json_is_the_profile_object_as_klaviyo_reads_it(row):
    fields = orjson.loads(row["payload"]) if row["payload"] and row["payload"].startswith("{") else None
    attrs = {"external_id": row["key"], **{target: row[f] for f, target in (("email", "email"), ("phone", "phone_number"),
                                                                          ("first_name", "first_name"),
                                                                          ("last_name", "last_name")) if row.get(f)}}
    expected: dict = {"type": "profile", "attributes": attrs}
    if fields is not None:
        attrs["properties"] = {f"lifeline_{k}": v for k, v in fields.items() if v is not None}
        if None in fields.values():
            expected["meta"] = {"patch_properties": {"unset": [f"lifeline_{k}" for k, v in fields.items() if v is None]}}
    assert profile_json(row) == orjson.dumps(expected)


def test_profile_names_kept_across_rows_give_the_same_profiles(monkeypatch):
    """The property names profile_json keeps in `names` across rows (and batches, across pages)
    change no byte, also once the kept names exceed their bound."""
    monkeypatch.setattr(klaviyo_module, "PROPERTY_NAMES_KEPT", 3)
    payloads = ['{"tier":"gold","n":1}', '{"n":null,"tier":"x"}', '{"a":1,"b":2,"c":3,"d":null}', None, '{"tier":null}']
    rows = [{"key": f"k{i}", "email": "a@x.com", "payload": text} for i, text in enumerate(payloads * 2)]
    names: dict[str, str] = {}
    assert [profile_json(row, names) for row in rows] == [profile_json(row) for row in rows]
    assert names == {"tier": "lifeline_tier", "n": "lifeline_n", "a": "lifeline_a", "b": "lifeline_b",
                     "c": "lifeline_c", "d": "lifeline_d"}  # grown past the bound once, then left alone
    assert [p for batch in batches(rows, names) for _, p in batch] == [profile_json(row) for row in rows]


def test_klaviyo_profiles_from_the_pages_parsed_payloads_equal_parsing_each_row():
    """with_sent_fields yields Pages carrying each row's parsed payload; the Klaviyo profiles built
    from them are the bytes profile_json makes parsing the row itself."""
    payloads = ['{"tier":"gold","n":1}', '{"n":null,"tier":"x"}', None, "[1]", "not json", '{"a":{"b":null}}']
    page = [{"key": f"k{i}", "email": f"{i}@x.com", "payload": text} for i, text in enumerate(payloads * 3)]
    [sent] = with_sent_fields([page])
    assert isinstance(sent, Page) and sent.payloads == [payload_fields(row) for row in page]
    assert [p for batch in batches(sent) for _, p in batch] == [profile_json(row) for row in page]
    stale = Page(page[:-1], sent.payloads)  # payloads of another length than the rows: parsed again
    assert page_payloads(stale) == [payload_fields(row) for row in page[:-1]]


def test_rare_collections_restores_the_thresholds_also_after_an_error():
    before = gc.get_threshold()
    with rare_collections(12_345):
        assert gc.get_threshold() == (12_345, *before[1:])
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError), rare_collections(12_345):
        raise RuntimeError("send failed")
    assert gc.get_threshold() == before
