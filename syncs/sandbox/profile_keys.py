"""The Klaviyo stand-in's identifier lookups, in memory instead of three SQLite indexes.

kl_profiles has no index on email, phone_number or external_id: with identifiers that arrive in
random order (a real audience's) every imported profile was three random B-tree inserts, and each
commit wrote most of those indexes' pages again (the sandbox's CPU for a 10,000-profile job at 1M
profiles: 420 ms, against 55-74 ms with ascending identifiers; with this index 70-72 ms, either
order). Instead each identifier kind has a `KeyIndex`: sorted numpy arrays of the keys' 64-bit
hashes with the profile's rowid beside them, built from kl_profiles when the store is first used
(the sandbox's state outlives its process: 1.7 s of CPU at 1M profiles, 21 s at 10M) and added to
on every write, so a job's 10,000 keys of one kind are found by a sort and a np.searchsorted a level.

A KeyIndex may hold entries that are no longer true (a hash collision, an identifier that moved,
a deleted profile, a write rolled back): every hit is checked against the stored row
(`ProfileKeys.rows`). It never misses a key a profile holds, so a miss is a definite miss.
Memory: 12 bytes a key (int64 hash, uint32 rowid), 36 bytes a profile with all three identifiers.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Sequence
from itertools import compress, repeat
from math import isqrt
from operator import is_not, itemgetter
from typing import NamedTuple

import numpy as np
import orjson

from syncs.sandbox.store import Store

IDENTIFIERS = ("email", "phone_number", "external_id")
MIN_DELTA = 1 << 16  # the recent entries kept apart from the main arrays: at least this many, or sqrt(main x
DELTA_SCALE = 1 << 14  # DELTA_SCALE) (about the copies a 10,000-key batch costs on each level) before a merge
MAX_ROWID = np.iinfo(np.uint32).max
LOAD_CHUNK = 100_000  # rows read at a time when the index is built


class KeyIndex:
    """A multimap text key -> rowids by the key's 64-bit hash (`key_hash`, Python's own str hash by
    default: this process's, as the index lives only in it). Two sorted levels: the main arrays and
    a smaller delta that a batch of new entries is merged into; the delta joins the main arrays
    when it grows past max(MIN_DELTA, sqrt(len(main) x DELTA_SCALE)): a batch then costs about as
    much copying in the delta as its share of the next merge into the main arrays."""

    def __init__(self, key_hash: Callable[[str], int] = hash, min_delta: int = MIN_DELTA):
        self._hash, self._min_delta = key_hash, min_delta
        empty = (np.empty(0, np.int64), np.empty(0, np.uint32))
        self._main: tuple[np.ndarray, np.ndarray] = empty
        self._delta: tuple[np.ndarray, np.ndarray] = empty

    def __len__(self) -> int:
        return len(self._main[0]) + len(self._delta[0])

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (*self._main, *self._delta))

    def hashes(self, keys: Collection[str]) -> np.ndarray:
        return np.fromiter(map(self._hash, keys), np.int64, len(keys))

    def add(self, keys: Sequence[str], rowids: Sequence[int] | np.ndarray) -> None:
        """Entries key -> rowid (the two aligned); a key already present keeps its other entries."""
        if len(keys):
            self.add_found(self.lookup(keys, find=False), rowids)

    def lookup(self, keys: Collection[str], find: bool = True) -> Lookup:
        """The keys' hashes sorted, with the rowids of the entries holding one of them (none looked
        for unless `find`) and where each goes in the delta level (what `add_found` needs: a batch
        looked up, then added, is hashed, sorted and searched in the delta once)."""
        hashes = self.hashes(keys)
        order = np.argsort(hashes)  # not stable: the entries of one hash are all candidates, in any order
        hashes = hashes[order]
        found, delta_at = [], None
        if find and len(self._main[0]):
            found.append(_range_values(self._main, hashes))
        if len(self._delta[0]):
            delta_at = np.searchsorted(self._delta[0], hashes)
            if find:
                found.append(_range_values(self._delta, hashes, delta_at))
        candidates = np.concatenate(found).astype(np.int64) if found else np.empty(0, np.int64)
        return Lookup(hashes, order, candidates, self._delta[0], delta_at)

    def add_found(self, found: Lookup, rowids: Sequence[int] | np.ndarray) -> None:
        """`add` of the keys `found` was the lookup of (`rowids` aligned with those keys)."""
        rows = np.asarray(rowids, np.int64)
        if not len(rows):
            return
        if rows.max() > MAX_ROWID or rows.min() < 0:
            raise ValueError(f"kl_profiles rowid {int(rows.max())} is outside 0..{MAX_ROWID}: the identifier index "
                             "stores rowids in 32 bits; reset the sandbox state (POST /control/reset).")
        # where the lookup found each hash's place in the delta, unless the delta changed since
        self._delta = _merged(self._delta, (found.hashes, rows[found.order].astype(np.uint32)),
                              found.delta_at if found.delta is self._delta[0] else None)
        if len(self._delta[0]) > max(self._min_delta, isqrt(len(self._main[0]) * DELTA_SCALE)):
            self._main = _merged(self._main, self._delta)
            self._delta = (self._delta[0][:0], self._delta[1][:0])

    def load(self, hashes: np.ndarray, rowids: np.ndarray) -> None:
        """Replace the contents by these entries (hashes from `hashes`), sorted once."""
        order = np.argsort(hashes, kind="stable")
        self._main = (hashes[order], rowids[order].astype(np.uint32))
        self._delta = (self._main[0][:0], self._main[1][:0])

    def candidates(self, keys: Collection[str]) -> np.ndarray:
        """The rowids of every entry whose hash is that of one of the keys (int64, may repeat)."""
        if not len(keys) or not len(self):
            return np.empty(0, np.int64)
        return self.lookup(keys).candidates


class Lookup(NamedTuple):
    """A batch of keys looked up in a KeyIndex (`KeyIndex.lookup`)."""
    hashes: np.ndarray  # the keys' hashes, ascending
    order: np.ndarray  # the batch positions of the keys in that order
    candidates: np.ndarray  # rowids of the entries with one of the hashes (int64, may repeat)
    delta: np.ndarray  # the delta level's hashes when looked up, and where each of `hashes` goes in them
    delta_at: np.ndarray | None  # (np.searchsorted; None when the delta was empty)

    def repeats(self) -> bool:
        """Two of the keys have one hash (the same key twice, or a collision)."""
        return bool(len(self.hashes) > 1 and (self.hashes[1:] == self.hashes[:-1]).any())


def _merged(level: tuple[np.ndarray, np.ndarray], new: tuple[np.ndarray, np.ndarray],
            at: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sorted `new` entries inserted into the sorted `level` (np.insert: one copy of each array);
    `at`: where each new hash goes in `level` (np.searchsorted), when the caller has it."""
    if not len(level[0]):
        return new
    at = np.searchsorted(level[0], new[0]) if at is None else at
    return np.insert(level[0], at, new[0]), np.insert(level[1], at, new[1])


def _range_values(level: tuple[np.ndarray, np.ndarray], hashes: np.ndarray, first: np.ndarray | None = None) -> np.ndarray:
    """The rowids of `level`'s entries equal to any of the sorted `hashes` (each hash's run of equal
    entries: one search for every hash, a second only for the hashes present); `first`: the first
    search's answer when the caller made it."""
    sorted_hashes, rowids = level
    first = np.searchsorted(sorted_hashes, hashes, "left") if first is None else first
    hit = sorted_hashes[np.minimum(first, len(sorted_hashes) - 1)] == hashes
    if not hit.any():
        return rowids[:0]
    first = first[hit]
    counts = np.searchsorted(sorted_hashes, hashes[hit], "right") - first
    if counts.max() == 1:
        return rowids[first]
    starts = np.repeat(first - (np.cumsum(counts) - counts), counts)  # run start minus the run's output offset
    return rowids[starts + np.arange(int(counts.sum()))]


class ProfileKeys:
    """One KeyIndex per identifier kind over kl_profiles' rows; every writer of an identifier adds it here."""

    def __init__(self, key_hash: Callable[[str], int] = hash):
        self.by = {field: KeyIndex(key_hash) for field in IDENTIFIERS}

    @classmethod
    def load(cls, db: sqlite3.Connection, key_hash: Callable[[str], int] = hash) -> ProfileKeys:
        """The index of every stored profile's identifiers (one scan of kl_profiles, read in chunks)."""
        keys = cls(key_hash)
        parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {field: [] for field in IDENTIFIERS}
        cursor = db.execute("select rowid, email, phone_number, external_id from kl_profiles")
        while chunk := cursor.fetchmany(LOAD_CHUNK):
            rowids = np.fromiter(map(itemgetter(0), chunk), np.int64, len(chunk))
            for n, field in enumerate(IDENTIFIERS, 1):
                texts, rows = _given(list(map(itemgetter(n), chunk)), rowids)
                parts[field].append((keys.by[field].hashes(texts), rows))
        for field, found in parts.items():
            if found:
                keys.by[field].load(np.concatenate([h for h, _ in found]), np.concatenate([r for _, r in found]))
        return keys

    def add_columns(self, rowids: Sequence[int], columns: dict[str, Sequence[str | None]]) -> None:
        """The identifiers of the rows `rowids` (each column aligned with them, None where not given)."""
        rows = np.asarray(rowids, np.int64)
        for field, column in columns.items():
            self.by[field].add(*_given(column, rows))

    @property
    def nbytes(self) -> int:
        return sum(index.nbytes for index in self.by.values())

    def candidates(self, wanted: dict[str, Collection[str]]) -> list[int]:
        """The rowids that may hold one of the wanted keys (field -> keys), ascending, each once."""
        return _ascending_once([self.by[field].candidates(keys) for field, keys in wanted.items()])

    def rows(self, db: sqlite3.Connection, wanted: dict[str, Collection[str]], columns: str) -> list[tuple]:
        """The stored profiles holding one of the wanted keys, checked against the row: (email,
        phone_number, external_id, *columns) each, in rowid order."""
        return _holding(db, self.candidates(wanted), wanted, columns)

    def new_keys(self, db: sqlite3.Connection, columns: dict[str, Sequence[str | None]]) -> NewKeys | None:
        """The lookups of a batch's identifiers (each column aligned with the batch, None where not
        given) when no key is given twice and no stored profile holds one; else None. `add_new`
        then adds them without hashing, sorting or searching them again."""
        found, wanted, candidates = {}, {}, []
        for field, column in columns.items():
            wanted[field], given = _given_at(column)
            lookup = self.by[field].lookup(wanted[field])
            if lookup.repeats() and len(set(wanted[field])) != len(wanted[field]):
                return None
            found[field] = (lookup, given)
            candidates.append(lookup.candidates)
        return None if _holding(db, _ascending_once(candidates), wanted, "1") else NewKeys(found)

    def add_new(self, new: NewKeys, rowids: Sequence[int]) -> None:
        """The identifiers `new_keys` looked up, now stored under `rowids` (aligned with the batch)."""
        rows = np.asarray(rowids, np.int64)
        for field, (lookup, given) in new.found.items():
            self.by[field].add_found(lookup, rows if given is None else rows[given])

    def first_ids(self, db: sqlite3.Connection, field: str, values: Collection[str]) -> dict[str, str]:
        """value -> the id of the stored profile whose `field` is that value (the first stored, when several)."""
        column = IDENTIFIERS.index(field)
        found: dict[str, str] = {}
        for row in self.rows(db, {field: values}, "id"):
            found.setdefault(row[column], row[3])
        return found


def _given(column: Sequence[str | None], rowids: np.ndarray) -> tuple[Sequence[str], np.ndarray]:
    """The keys of a column that are given (not None) and their rows' rowids (in C: no Python step a key)."""
    keys, given = _given_at(column)
    return keys, rowids if given is None else rowids[given]


def _given_at(column: Sequence[str | None]) -> tuple[Sequence[str], np.ndarray | None]:
    """The keys of a column that are given (not None) and where they are in it (None: everywhere)."""
    if None not in column:
        return column, None
    given = np.fromiter(map(is_not, column, repeat(None)), bool, len(column))
    return list(compress(column, given)), given


def _ascending_once(rowid_arrays: list[np.ndarray]) -> list[int]:
    """The rowids of the arrays (the fields' candidates), ascending, each once."""
    return np.unique(np.concatenate(rowid_arrays)).tolist() if rowid_arrays else []


def _holding(db: sqlite3.Connection, rowids: list[int], wanted: dict[str, Collection[str]], columns: str) -> list[tuple]:
    """The rows among `rowids` (ascending) holding one of the wanted keys (field -> keys): (email,
    phone_number, external_id, *columns) each, in rowid order."""
    if not rowids:
        return []
    rows = db.execute(f"select email, phone_number, external_id, {columns} from kl_profiles "  # noqa: S608
                      "where rowid in (select value from json_each(?)) order by rowid",
                      (orjson.dumps(rowids).decode(),)).fetchall()
    checks = [(IDENTIFIERS.index(field), set(keys)) for field, keys in wanted.items()]
    return [row for row in rows if any(row[i] in keys for i, keys in checks)]


class NewKeys(NamedTuple):
    """`ProfileKeys.new_keys`: each identifier kind's lookup, and where its given keys are in the batch."""
    found: dict[str, tuple[Lookup, np.ndarray | None]]


def profile_keys(store: Store) -> ProfileKeys:
    """The store's identifier index, built from kl_profiles on first use (under the store's lock)."""
    return store.derived("klaviyo.profile_keys", ProfileKeys.load)


def next_rowids(db: sqlite3.Connection, count: int) -> range:
    """`count` rowids after kl_profiles' largest (given explicitly to the insert, so the index knows them)."""
    first = db.execute("select coalesce(max(rowid), 0) + 1 from kl_profiles").fetchone()[0]
    return range(first, first + count)
