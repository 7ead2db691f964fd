"""Waiting in async tests for something the services do in the background."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def until(
    condition: Callable[[], bool | Awaitable[bool]],
    timeout_s: float = 30,
    what: str | Callable[[], str] = "condition",
) -> None:
    """Poll ``condition`` (plain or async) until it holds; fail naming ``what`` (or what it returns)."""
    deadline = time.monotonic() + timeout_s
    while True:
        held = condition()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        assert time.monotonic() < deadline, f"timed out waiting for {what() if callable(what) else what}"
        await asyncio.sleep(0.05)
