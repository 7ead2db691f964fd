"""Subscriptions as the delivery service sees them: read at most every few seconds, shared by every delivery."""

from __future__ import annotations

import asyncio
import time

from hookstream.store.subscriptions import Subscription, SubscriptionStore


class SubscriptionCache:
    """Subscriptions read at most every ``refresh_s``; a change made here is seen at once.

    One read serves everyone: a thousand deliveries finding the cache stale at once share it."""

    def __init__(self, store: SubscriptionStore, refresh_s: float = 2.0) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self._by_id: dict[str, Subscription] = {}
        self._loaded_at = 0.0
        self._loading: asyncio.Future[None] | None = None

    async def _refresh(self) -> None:
        if time.monotonic() - self._loaded_at <= self.refresh_s:
            return
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._load())
        await asyncio.shield(self._loading)

    async def _load(self) -> None:
        try:
            self._by_id = {s.id: s for s in await self.store.list()}
            self._loaded_at = time.monotonic()
        finally:
            self._loading = None

    async def all(self) -> list[Subscription]:
        await self._refresh()
        return list(self._by_id.values())

    async def get(self, subscription_id: str) -> Subscription:
        await self._refresh()
        if subscription_id not in self._by_id:
            self._by_id[subscription_id] = await self.store.get(subscription_id)
        return self._by_id[subscription_id]

    def put(self, subscription: Subscription) -> None:
        self._by_id[subscription.id] = subscription
