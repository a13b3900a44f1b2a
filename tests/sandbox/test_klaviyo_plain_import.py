"""Klaviyo stand-in: a bulk import whose profiles are all plainly valid and new (an initial sync) is
inserted from columns (klaviyo.plain_profiles / insert_new_profiles); it must store exactly what the
profile-by-profile path stores, and every other job must still take that path. Its attributes are
encoded all at once when none has a null or a key that is not stored (klaviyo.attribute_texts), or
kept as the raw JSON they arrived as when the body is read without orjson (plain_import.plain_job),
and its ids made ascending without a sort (common.ascending_ulids)."""
from __future__ import annotations

import json

import orjson
import pytest
import requests

from syncs.sandbox import klaviyo, plain_import
from syncs.sandbox.common import CROCKFORD, ascending_ulids
from syncs.sandbox.store import ROWS_PER_STATEMENT

from .conftest import KLAVIYO_HEADERS as H
from .test_klaviyo import api, bulk_body, make_list

COUNT = ROWS_PER_STATEMENT + 234


def first_job() -> list[dict]:
    """New profiles only, in shapes the column path takes: some identifiers absent or "", upper-case
    emails, nulls to drop, a key that is not stored, the word null in a text."""
    rows = [{"external_id": f"e-{i}", "email": f"P{i}@Example.COM", "phone_number": f"+1555{i:07d}",
             "first_name": f"F{i}", "properties": {"n": i}} for i in range(COUNT)]
    rows[3] = {"email": "only-email@example.com", "phone_number": "", "external_id": None}
    rows[4] = {"phone_number": "+15550000004"}
    rows[5] = {"external_id": "only-ext", "email": ""}
    rows[6] = {"external_id": "e-6", "first_name": None, "properties": {"n": 6, "gone": None}}
    rows[7] = {"external_id": "e-7", "created": "2020-01-01T00:00:00Z", "last_name": "Nullable"}
    return rows


def clean_job() -> list[dict]:
    """New profiles the column path takes with their attributes encoded all at once (no null, no key
    that is not stored): some without an email, external ids to strip, texts with quotes and non-ASCII."""
    rows = [{"external_id": f"c-{i}", "email": f"C{i}@Example.org", "first_name": f'Q"{i}\u00e9',
             "properties": {"tier": "gold", "n": i / 4, "tags": ["a", {"b": i}]}} for i in range(COUNT)]
    rows[1] = {"external_id": " c-1 ", "phone_number": "+15557000001", "properties": {}}
    rows[2] = {"phone_number": "+15557000002", "email": ""}
    return rows


def later_jobs() -> list[tuple[list[dict], list[dict | None] | None]]:
    """Jobs the column path must hand to the profile-by-profile one: stored profiles again, a person
    named twice in one job, a meta unset, an invalid profile, a profile given by id."""
    return [
        ([{"external_id": "e-10", "last_name": "Again"}, {"email": "brand-new@example.com"}], None),
        ([{"email": "twice@example.com", "first_name": "A"}, {"email": "Twice@example.com", "last_name": "B"}], None),
        ([{"external_id": "e-11", "properties": {"n": 0}}], [{"patch_properties": {"unset": "n"}}]),
        ([{"email": "not-an-email"}, {"email": "ok@example.com"}], None),
        ([{"email": " spaced@example.com "}, {"phone_number": "+15551230000\n"}], None),
    ]


def run_jobs(sandbox) -> dict:
    """Every job of first_job + later_jobs into one list; what the store then holds, by identifiers."""
    list_id = make_list(sandbox, "plain")
    jobs = []
    for profiles, meta in [(first_job(), None), (clean_job(), None), *later_jobs()]:
        body = bulk_body(profiles, list_id)
        for entry, extra in zip(body["data"]["attributes"]["profiles"]["data"], meta or []):
            entry["meta"] = extra
        r = requests.post(f"{api(sandbox)}/profile-bulk-import-jobs", json=body, headers=H)
        assert r.status_code == 202, r.text
        job = r.json()["data"]
        errors = requests.get(f"{api(sandbox)}/profile-bulk-import-jobs/{job['id']}/import-errors",
                              headers=H).json()["data"]
        jobs.append((job["attributes"]["completed_count"], job["attributes"]["failed_count"],
                     [(e["attributes"]["code"], e["attributes"]["source"]["pointer"]) for e in errors], job["id"]))
    with sandbox.app.state.ctx.store.tx() as db:
        keys = {pid: (email, phone, ext) for pid, email, phone, ext in db.execute(
            "select id, email, phone_number, external_id from kl_profiles")}
        profiles = {keys[pid]: (json.loads(attrs), ec, sc) for pid, attrs, ec, sc in db.execute(
            "select id, attributes, email_consent, sms_consent from kl_profiles")}
        members = [keys[pid] for (pid,) in db.execute(
            "select profile_id from kl_list_members where list_id = ? order by profile_id", (list_id,))]
        imported = [[keys[pid] for pid in json.loads(ids)] for _, _, _, jid in jobs for (ids,) in db.execute(
            "select profile_ids from kl_job_profiles where job_id = ?", (jid,))]
    return {"jobs": [j[:3] for j in jobs], "profiles": profiles, "members": members, "imported": imported}


def test_the_column_path_stores_what_the_profile_by_profile_path_stores(start_sandbox, monkeypatch, tmp_path):
    with start_sandbox(state_dir=tmp_path / "columns", rate_limits=False) as sandbox:
        taken, read = [], []
        real, real_read = klaviyo.insert_new_profiles, klaviyo.plain_job
        monkeypatch.setattr(klaviyo, "insert_new_profiles", lambda *a: taken.append(1) or real(*a))
        monkeypatch.setattr(klaviyo, "plain_job", lambda *a: read.append(real_read(*a) is not None) or real_read(*a))
        columns = run_jobs(sandbox)
    assert taken == [1, 1], "only the first two jobs (all new, all plain) take the column path"
    # read without orjson: the clean job, and two plain jobs of known profiles (parsed then, and merged);
    # not the first job (nulls, a key that is not stored), a meta, an invalid or a spaced identifier
    assert read == [False, True, True, True, False, False, False]
    monkeypatch.setattr(klaviyo, "plain_profiles", lambda entries: None)
    monkeypatch.setattr(klaviyo, "plain_job", lambda *a: None)
    with start_sandbox(state_dir=tmp_path / "one_by_one", rate_limits=False) as sandbox:
        one_by_one = run_jobs(sandbox)
    assert columns == one_by_one
    assert columns["jobs"][:2] == [(COUNT, 0, []), (COUNT, 0, [])]
    assert columns["profiles"][("p8@example.com", "+15550000008", "e-8")] == (
        {"external_id": "e-8", "email": "P8@Example.COM", "phone_number": "+15550000008", "first_name": "F8",
         "properties": {"n": 8}}, None, None)
    assert columns["profiles"][(None, None, "e-6")][0] == {"external_id": "e-6", "properties": {"n": 6}}
    assert columns["profiles"][(None, "+15557000001", "c-1")][0] == {
        "external_id": " c-1 ", "phone_number": "+15557000001", "properties": {}}
    assert columns["profiles"][("c5@example.org", None, "c-5")][0]["first_name"] == 'Q"5\u00e9'
    # ids ascend in job order (the list's members by id are the jobs' profiles in order)
    assert columns["members"][:2 * COUNT] == columns["imported"][0] + columns["imported"][1]


@pytest.mark.parametrize("extra", [[], [{"email": "x@example.com", "first_name": None}],
                                   [{"email": "x@example.com", "properties": {"gone": None}}],
                                   [{"email": "x@example.com", "updated": "2020-01-01T00:00:00Z"}],
                                   [{"email": "x@example.com", "subscriptions": {}}],
                                   [{"email": "x@example.com", "first_name": klaviyo._MARK}],
                                   [{"email": "x@example.com", "properties": {"p": [{}, klaviyo._MARK, {}]}}]])
def test_attribute_texts_are_what_each_profile_would_store(extra):
    """One null, one key that is not stored, or the marker between profiles anywhere in the job: each
    profile is encoded on its own."""
    for attributes in (first_job(), clean_job() + extra):
        assert klaviyo.attribute_texts(attributes) == [klaviyo.fresh_attributes_json(a).decode() for a in attributes]


@pytest.mark.parametrize("text, fits", [("a" * 99_000, True), ("a" * 103_000, False),
                                        ("\u00e9" * 49_000, True), ("\u00e9" * 52_000, False)])
@pytest.mark.parametrize("null", [False, True])
def test_attribute_texts_refuse_a_profile_over_100_kb_of_utf8(text, fits, null):
    big = {"email": "big@example.com", "first_name": text, "last_name": None if null else "x"}
    attributes = [*clean_job()[:3], big]
    texts = klaviyo.attribute_texts(attributes)
    assert (texts == [klaviyo.fresh_attributes_json(a).decode() for a in attributes]) if fits else texts is None


@pytest.mark.parametrize("count", [1, 31, 32, 33, 1023, 1025, 10_000, 40_000])
def test_ascending_ids_ascend_and_look_like_klaviyo_ids(count):
    ids = ascending_ulids(count)
    assert len(ids) == count == len(set(ids))
    assert ids == sorted(ids)
    assert all(len(i) == 26 and set(i) <= set(CROCKFORD) for i in ids)
    assert len({i[:10] for i in ids}) == 1  # one call, one millisecond stamp


NOT_PLAIN = [  # a profile that takes a job out of the plain shape
    {"meta": {"patch_properties": {"unset": "x"}}}, {"attributes": {"id": "01ABC", "email": "a@example.com"}},
    {"attributes": {"email": 5}}, {"attributes": {"email": " a@example.com"}}, {"attributes": {"email": "é@example.com"}},
    {"attributes": {"email": "a@example"}}, {"attributes": {"email": "a\x1cb@example.com"}},
    {"attributes": {"email": "a@b@example.com"}}, {"attributes": {"phone_number": "+15551234567\n"}},
    {"attributes": {"phone_number": "5551234567"}},
    {"attributes": {"phone_number": "+1555\u0661\u0662\u0663\u0664567"}}, {"attributes": {"external_id": "  "}},
    {"attributes": {"external_id": 7}}, {"attributes": {"first_name": "nobody"}}, {"attributes": "x"},
]


@pytest.mark.parametrize("change", NOT_PLAIN)
def test_a_job_with_one_profile_out_of_the_plain_shape_is_checked_profile_by_profile(change):
    entries = [{"type": "profile", "attributes": {"email": f"u{i}@example.com", "external_id": f"x{i}"}}
               for i in range(3)]
    assert klaviyo.plain_profiles(entries) is not None
    entries[1] = {"type": "profile", **change}
    assert klaviyo.plain_profiles(entries) is None


@pytest.mark.parametrize("entry", ["x", 5, None, ["attributes"], {"type": "profile", "attributes": ["email"]},
                                   {"type": "profile"}])
def test_a_profile_that_is_not_an_object_with_attributes_is_checked_profile_by_profile(entry):
    entries = [{"type": "profile", "attributes": {"email": f"u{i}@example.com"}} for i in range(3)]
    entries[2] = entry
    assert klaviyo.plain_profiles(entries) is None


def test_plain_columns_hold_the_match_keys():
    entries = [{"attributes": {"email": "A@Example.com", "phone_number": "", "external_id": " x "}},
               {"attributes": {"phone_number": "+15551234567", "email": None}}]
    plain = klaviyo.plain_profiles(entries)
    assert (plain.emails, plain.phones, plain.external_ids) == (["a@example.com", None], [None, "+15551234567"],
                                                                ["x", None])


# -- plain_import.plain_job: the body read as columns, without orjson ----------------------------------------
def encoded(entries: list, lists: list[str] = (), spaced: bool = False) -> bytes:
    body = {"data": {"type": "profile-bulk-import-job", "attributes": {"profiles": {"data": entries}}}}
    if lists:
        body["data"]["relationships"] = {"lists": {"data": [{"type": "list", "id": lid} for lid in lists]}}
    return json.dumps(body).encode() if spaced else orjson.dumps(body)


def read(body: bytes, max_profiles: int = klaviyo.MAX_BULK_PROFILES) -> plain_import.PlainJob | None:
    return plain_import.plain_job(body, max_profiles, klaviyo.MAX_PROFILE_BYTES)


@pytest.mark.parametrize("spaced", [False, True])
def test_plain_job_reads_the_columns_plain_profiles_reads_and_the_texts_the_profiles_store(spaced):
    entries = [{"type": "profile", "attributes": a} for a in clean_job()]
    job = read(encoded(entries, ["L1", "L2"], spaced))
    parsed = orjson.loads(encoded(entries))["data"]["attributes"]["profiles"]["data"]
    plain = klaviyo.plain_profiles(parsed)
    assert job is not None and plain is not None
    assert (job.profiles.emails, job.profiles.phones, job.profiles.external_ids) == (
        plain.emails, plain.phones, plain.external_ids)
    assert job.profiles.attributes is None
    stored = klaviyo.attribute_texts(plain.attributes)
    assert [json.loads(t) for t in job.profiles.texts] == [json.loads(t) for t in stored]
    if spaced:  # the client's own spaces and \u escapes are kept: the same JSON, longer text
        assert job.profiles.texts[5] != stored[5] and len(job.profiles.texts[5]) > len(stored[5])
    else:  # compact JSON as orjson writes it: the very text the general path stores
        assert job.profiles.texts == stored
    assert klaviyo.list_ids_of({"data": {"relationships": job.relationships}}) == ["L1", "L2"]


@pytest.mark.parametrize("change", NOT_PLAIN + [
    {"attributes": {"email": "a@example.com", "first_name": None}}, {"meta": None},
    {"attributes": {"email": "a@example.com", "subscriptions": {}}},
    {"attributes": {"email": "a@example.com", "created": "2020-01-01T00:00:00Z"}},
    {"attributes": {"email": "a@example.com", "updated": "2020-01-01T00:00:00Z"}},
    {"attributes": {"email": "a@example.com", "first_name": "a" * klaviyo.MAX_PROFILE_BYTES}},
])
def test_plain_job_leaves_a_job_with_one_profile_out_of_its_shape_to_the_general_path(change):
    """Every shape plain_profiles refuses, and those whose stored text is not the raw one (a null is
    dropped, a key that is not stored, a profile over the size limit)."""
    entries = [{"type": "profile", "attributes": {"email": f"u{i}@example.com", "external_id": f"x{i}"}}
               for i in range(3)]
    assert read(encoded(entries)) is not None
    entries[1] = {"type": "profile", **change}
    assert read(encoded(entries)) is None


@pytest.mark.parametrize("body", [
    b"", b"not json", b"[]", b'{"data": []}', b'{"data": {"attributes": {}}}',
    b'{"data": {"attributes": {"profiles": {"data": []}}}}', b'{"data": {"attributes": {"profiles": {"data": {}}}}}',
    b'{"data": {"attributes": {"profiles": {"data": ["x"]}}}}', b'{"data": {"attributes": {"profiles": {"data": [{}]}}}}',
    b'{"data": {"attributes": {"profiles": {"data": [{"attributes": {"email": "a@example.com"}}]}}',
    b'{"data": {"attributes": {"profiles": {"data": [{"attributes": {"email": "\\ud800@example.com"}}]}}}}',
])
def test_plain_job_leaves_what_it_cannot_read_to_the_general_path(body):
    assert read(body) is None


def test_plain_job_leaves_a_job_over_the_profile_count_to_the_general_path():
    entries = [{"type": "profile", "attributes": {"email": f"u{i}@example.com"}} for i in range(4)]
    assert read(encoded(entries), max_profiles=4) is not None
    assert read(encoded(entries), max_profiles=3) is None


@pytest.mark.parametrize("shape", ["not plain", "known"])
def test_a_job_the_general_path_answers_is_answered_the_same_with_plain_job(start_sandbox, monkeypatch, tmp_path, shape):
    """Through HTTP: a job of too many profiles, one of a malformed profile, and a plain one of known
    profiles get the same answer and store the same with plain_job as without it."""
    def answers(sandbox) -> list:
        list_id = make_list(sandbox, "same")
        jobs = [[{"email": "first@example.com", "first_name": "F"}],
                [{"email": "first@example.com", "last_name": "L"}, {"email": "second@example.com"}]
                if shape == "known" else [{"email": "bad"}, {"email": "ok@example.com"}]]
        out = []
        for profiles in jobs:
            r = requests.post(f"{api(sandbox)}/profile-bulk-import-jobs", data=encoded(
                [{"type": "profile", "attributes": p} for p in profiles], [list_id]), headers=H)
            job = r.json()["data"]
            errors = requests.get(f"{api(sandbox)}/profile-bulk-import-jobs/{job['id']}/import-errors", headers=H)
            out.append((r.status_code, {k: job["attributes"][k] for k in ("total_count", "completed_count", "failed_count")},
                        [e["attributes"]["code"] for e in errors.json()["data"]]))
        too_many = encoded([{"type": "profile", "attributes": {"email": f"u{i}@example.com"}}
                            for i in range(klaviyo.MAX_BULK_PROFILES + 1)])
        r = requests.post(f"{api(sandbox)}/profile-bulk-import-jobs", data=too_many, headers=H)
        out.append((r.status_code, r.json()["errors"][0]["detail"]))
        with sandbox.app.state.ctx.store.tx() as db:
            out.append(sorted((e, json.loads(a)) for e, a in db.execute("select email, attributes from kl_profiles")))
        return out

    with start_sandbox(state_dir=tmp_path / "with", rate_limits=False) as sandbox:
        with_plain_job = answers(sandbox)
    monkeypatch.setattr(klaviyo, "plain_job", lambda *a: None)
    with start_sandbox(state_dir=tmp_path / "without", rate_limits=False) as sandbox:
        assert answers(sandbox) == with_plain_job
    assert with_plain_job[-2][0] == 400
    assert with_plain_job[1][1]["failed_count"] == (0 if shape == "known" else 1)
    assert dict(with_plain_job[-1])["first@example.com"] == (
        {"email": "first@example.com", "first_name": "F", "last_name": "L"} if shape == "known"
        else {"email": "first@example.com", "first_name": "F"})
