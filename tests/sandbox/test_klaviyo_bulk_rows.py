"""Klaviyo stand-in: a bulk import larger than one multi-row insert statement (store.insert_rows
writes 1,000 rows a statement) stores every accepted profile exactly as sent, in the list once,
with the per-profile errors at their positions; in-job duplicates and dropped keys still merge."""
from __future__ import annotations

import json

import requests

from syncs.sandbox.common import CROCKFORD
from syncs.sandbox.store import ROWS_PER_STATEMENT

from .conftest import KLAVIYO_HEADERS as H
from .test_klaviyo import api, bulk_body, make_list

COUNT = 2 * ROWS_PER_STATEMENT + 345


def profiles() -> list[dict]:
    rows = [{"external_id": f"r-{i}", "email": f"r{i}@example.com", "first_name": f"F{i}",
             "properties": {"n": i}} for i in range(COUNT)]
    rows[5]["email"] = "not-an-email"
    rows[1500] = {"first_name": "nobody"}                                   # no identifier
    rows[2001]["phone_number"] = "12345"                                    # not E.164
    rows[1200] = {"email": "R10@Example.com ", "last_name": "Later"}        # profile 10 again, merged
    rows[7] = {"external_id": "r-7", "first_name": None, "properties": {"n": 7, "gone": None}}  # nulls dropped
    rows[8]["created"] = "2020-01-01T00:00:00Z"                             # not an attribute: not stored
    return rows


def test_a_job_over_several_insert_statements_stores_every_profile_as_sent(sandbox):
    list_id = make_list(sandbox, "big")
    sent = profiles()
    r = requests.post(f"{api(sandbox)}/profile-bulk-import-jobs", json=bulk_body(sent, list_id), headers=H)
    assert r.status_code == 202, r.text
    job = r.json()["data"]["attributes"]
    assert (job["total_count"], job["completed_count"], job["failed_count"]) == (COUNT, COUNT - 3, 3)

    job_id = r.json()["data"]["id"]
    errors = requests.get(f"{api(sandbox)}/profile-bulk-import-jobs/{job_id}/import-errors", headers=H).json()["data"]
    assert [e["attributes"]["source"]["pointer"] for e in errors] == [
        "/data/attributes/profiles/data/5/attributes/email", "/data/attributes/profiles/data/1500/attributes",
        "/data/attributes/profiles/data/2001/attributes/phone_number"]

    with sandbox.app.state.ctx.store.tx() as db:
        stored = {ext: (pid, email, json.loads(attrs)) for pid, ext, email, attrs in db.execute(
            "select id, external_id, email, attributes from kl_profiles")}
        stamps = set(db.execute("select email_consent, sms_consent, created, updated from kl_profiles"))
        members = db.execute("select count(*), count(distinct profile_id) from kl_list_members where list_id = ?",
                             (list_id,)).fetchone()
    assert len(stored) == COUNT - 4  # three rejected, one merged into profile 10
    # every statement's rows get the job's time and no consent (values bound once a statement: store.insert_rows)
    assert stamps == {(None, None, job["created_at"], job["created_at"])}
    assert members == (COUNT - 4, COUNT - 4)
    assert all(len(pid) == 26 and set(pid) <= set(CROCKFORD) for pid, _, _ in stored.values())
    assert len({pid for pid, _, _ in stored.values()}) == len(stored)
    for i, attrs in enumerate(sent):
        if i in (5, 1500, 2001, 1200, 7, 8, 10):
            continue
        assert stored[f"r-{i}"][2] == attrs, i
    assert stored["r-10"][2] == {**sent[10], "email": "R10@Example.com ", "last_name": "Later"}
    assert stored["r-10"][1] == "r10@example.com"  # the match key: trimmed, lower case
    assert stored["r-7"][2] == {"external_id": "r-7", "properties": {"n": 7}}
    assert stored["r-8"][2] == {k: v for k, v in sent[8].items() if k != "created"}
    assert "r-5" not in stored and "r-2001" not in stored
