"""Group commit: concurrent callers share batches, and one bad item fails only its own caller."""

from __future__ import annotations

import asyncio

import pytest
from hookstream.db.group_commit import GroupCommit


async def test_concurrent_items_share_batches_and_get_their_own_results() -> None:
    batches: list[list[int]] = []

    async def process(items: list[int]) -> list[int]:
        batches.append(items)
        await asyncio.sleep(0.01)  # a transaction's round trips
        return [i * 10 for i in items]

    group: GroupCommit[int, int] = GroupCommit(process, max_batch=50, max_concurrent=2)
    results = await asyncio.gather(*(group.submit(i) for i in range(200)))
    assert results == [i * 10 for i in range(200)]
    assert sorted(i for b in batches for i in b) == list(range(200))
    assert len(batches) < 20  # batched, not one transaction per item
    assert max(len(b) for b in batches) <= 50


async def test_a_failing_batch_is_retried_item_by_item() -> None:
    async def process(items: list[int]) -> list[int]:
        if 13 in items:
            raise ValueError("item 13 breaks the transaction")
        return items

    group: GroupCommit[int, int] = GroupCommit(process)
    outcomes = await asyncio.gather(*(group.submit(i) for i in range(20)), return_exceptions=True)
    assert [o for o in outcomes if isinstance(o, Exception)] == [outcomes[13]]
    assert isinstance(outcomes[13], ValueError)
    assert [o for i, o in enumerate(outcomes) if i != 13] == [i for i in range(20) if i != 13]
    with pytest.raises(ValueError, match="item 13"):
        await group.submit(13)


async def test_work_that_must_not_repeat_fails_the_whole_batch_instead_of_retrying_it() -> None:
    runs: list[list[int]] = []

    async def process(items: list[int]) -> list[int]:
        runs.append(items)
        raise ConnectionError("the commit failed after the batch's calls were made")

    group: GroupCommit[int, int] = GroupCommit(process, retry_alone=False)
    outcomes = await asyncio.gather(*(group.submit(i) for i in range(10)), return_exceptions=True)
    assert all(isinstance(o, ConnectionError) for o in outcomes)
    assert sorted(i for run in runs for i in run) == list(range(10))  # each item ran once, none again alone
