"""Per-process caches of rows that never change once committed (a ledger account's id and role, an instrument).

The hot paths (every registry transfer, every trade) would otherwise read the same immutable rows in every unit of
work. A value is cached per database (per engine, so the many databases of a test run never mix) and only once the
unit of work that saw it has committed. A row the unit of work created itself (`created`) is never remembered by
it, not even when a later read in the same unit of work finds it: a savepoint that rolls the creation back would
otherwise leave an id of a row that does not exist. The next unit of work reads it, committed, and remembers it.
A row that can change (a balance) is never cached here, with one exception that the user re-checks: a registry
account's status is remembered as a guess that the transfer writing on it verifies in the same statement
(registry/queries.py `transfer_accounts`), and `forget` drops it when the guess turned out wrong.
"""

from __future__ import annotations

import weakref
from typing import Any, Generic, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession

K = TypeVar("K")
V = TypeVar("V")


class CommittedCache(Generic[K, V]):
    """`get` what earlier committed units of work remembered; `remember` stages a value until this one commits."""

    def __init__(self, name: str, size_max: int = 100_000) -> None:
        self.name = name
        self.size_max = size_max
        self._by_engine: weakref.WeakKeyDictionary[Engine, dict[K, V]] = weakref.WeakKeyDictionary()

    def _store(self, ses: AsyncSession) -> dict[K, V]:
        engine = ses.sync_session.get_bind()
        assert isinstance(engine, Engine)
        store = self._by_engine.get(engine)
        if store is None:
            store = self._by_engine[engine] = {}
        return store

    def get(self, ses: AsyncSession, key: K) -> V | None:
        return self._store(ses).get(key)

    def created(self, ses: AsyncSession, key: K) -> None:
        """This unit of work inserted the row of `key`: it will not remember it (see the module docstring)."""
        ses.sync_session.info.setdefault(f"{self.name}:created", set()).add(key)

    def forget(self, ses: AsyncSession, *keys: K) -> None:
        store, staged = self._store(ses), ses.sync_session.info.get(self.name) or {}
        for key in keys:
            store.pop(key, None)
            staged.pop(key, None)

    def remember(self, ses: AsyncSession, key: K, value: V) -> None:
        sync = ses.sync_session
        if key in sync.info.get(f"{self.name}:created", ()):
            return
        staged: dict[K, V] | None = sync.info.get(self.name)
        if staged is None:
            staged = sync.info[self.name] = {}
            store = self._store(ses)
            size_max = self.size_max

            def merge(session: Any) -> None:
                # `after_commit` also fires when a savepoint is released; only the outermost commit counts.
                if session.get_nested_transaction() is None:
                    if len(store) + len(staged) > size_max:
                        store.clear()
                    store.update(staged)
                    staged.clear()

            event.listen(sync, "after_commit", merge)
        staged[key] = value
