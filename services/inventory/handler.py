"""Canonical order events → the ERP/inventory system: stock reserved, released or taken.

- ``order.created``: reserve the order's lines (``PUT /reservations/<order id>``); the ERP's
  reservation id is kept on the order (``order_refs``, system ``erp``).
- ``order.cancelled``: release the reservation (``DELETE``); none to release (404) is done too.
- ``order.fulfilled`` / ``order.shipped``: the reserved stock has left (``PATCH`` status ``taken``).
"""

from __future__ import annotations

from typing import Any

import psycopg
from hookstream.avro import AvroSerde
from hookstream.connectors import SystemApi, SystemRejected
from hookstream.consumer import Record
from hookstream.consumer.steps import StepResult, Steps
from hookstream.errors import PermanentError
from hookstream.store.orders import set_order_ref

EVENT_TYPES = frozenset({"order.created", "order.cancelled", "order.fulfilled", "order.shipped"})


class Stock:
    def __init__(self, api: SystemApi, steps: Steps, canonical: AvroSerde) -> None:
        self.api = api
        self.steps = steps
        self.canonical = canonical

    async def __call__(self, record: Record) -> None:
        event = self.canonical.decode(record.value or b"", record.headers)  # SchemaError: permanent → DLQ
        kind, event_id, path = event["type"], event["event_id"], f"/reservations/{event['order_id']}"
        if kind == "order.created":
            lines = [{"sku": i["sku"], "quantity": i["quantity"]} for i in event.get("items") or [] if i.get("sku")]
            if not lines:
                return  # nothing stocked to reserve (e.g. only custom lines without a SKU)
            body = {"order_id": event["order_id"], "lines": lines, "status": "reserved"}

            async def keep_ref(conn: psycopg.AsyncConnection[Any], result: StepResult) -> None:
                if not result.get("id"):
                    raise PermanentError(f"the ERP's answer to the reservation has no id: {str(result)[:200]}")
                await set_order_ref(conn, event["order_id"], "erp", str(result["id"]))

            await self.steps.run(
                event_id, "reserve", lambda key: self.api.call("PUT", path, body, idempotency_key=key), effects=keep_ref
            )
        elif kind == "order.cancelled":
            await self.steps.run(event_id, "release", lambda key: self._release(path, key))
        elif kind in ("order.fulfilled", "order.shipped"):
            await self.steps.run(
                event_id, "take", lambda key: self.api.call("PATCH", path, {"status": "taken"}, idempotency_key=key)
            )

    async def _release(self, path: str, key: str) -> dict[str, Any]:
        try:
            return await self.api.call("DELETE", path, {}, idempotency_key=key)
        except SystemRejected as exc:
            if exc.status == 404:
                return {"released": False, "reason": "no reservation to release"}
            raise
