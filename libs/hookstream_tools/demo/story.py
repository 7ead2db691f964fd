"""What ``make run`` shows after the partner's webhooks: per order, what every external system got.

The workflows talk to the sandbox; this reads its record (CRM, ERP, warehouse, risk, SMS, email) and
the store (risk verdicts, invoices, which it also writes out as PDF files) and tells it order by order.
"""

from __future__ import annotations

from pathlib import Path

from hookstream.db import Database
from hookstream.store.invoices import InvoiceStore
from hookstream.store.risk import RiskStore

from hookstream_tools.sandbox import Sandbox


async def story(sandbox: Sandbox, database_url: str, order_ids: list[str], invoice_dir: Path) -> list[str]:
    lines: list[str] = []
    invoice_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, a local folder
    crm, erp, warehouse = (sandbox.systems[s].resources for s in ("crm", "erp", "warehouse"))
    async with Database(database_url) as db:
        for order_id in order_ids:
            number = order_id.split(":", 1)[-1]
            lines.append(f"  {order_id}")
            if f"/orders/{order_id}" in crm:
                record = crm[f"/orders/{order_id}"]
                lines.append(f"    CRM        order {record['id']}, status {record.get('status')}")
            if f"/reservations/{order_id}" in erp:
                reservation = erp[f"/reservations/{order_id}"]
                lines.append(f"    ERP        stock {reservation.get('status')}: {reservation.get('lines')}")
            assessment = await RiskStore(db).get(order_id)
            if assessment is not None:
                why = f" ({'; '.join(assessment.reasons)})" if assessment.reasons else ""
                lines.append(f"    risk       score {assessment.score}, {assessment.verdict}{why}")
            for resource in warehouse.values():
                if resource.get("order_id") == order_id and "priority" in resource:
                    priority = ", priority" if resource["priority"] else ""
                    lines.append(f"    warehouse  fulfillment {resource['id']} requested{priority}")
            for document in await InvoiceStore(db).for_order(order_id):
                path = invoice_dir / f"{document.number}.pdf"
                path.write_bytes(document.pdf)
                lines.append(f"    {document.kind:<10} {document.number} → {path}")
            for message in sandbox.emails:
                if message["subject"].endswith(number) or f"order {number} " in message["subject"]:
                    attached = f" + {message['attachments'][0]['filename']}" if message["attachments"] else ""
                    lines.append(f"    email      to {message['to']}: {message['subject']}{attached}")
            for call in sandbox.effects("sms"):
                if number in str(call["body"].get("text")):
                    lines.append(f"    SMS        to {call['body']['to']}: {call['body']['text']}")
    return lines
