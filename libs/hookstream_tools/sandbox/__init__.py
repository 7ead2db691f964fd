"""The sandbox: warehouse, CRM, ERP, risk and SMS provider over HTTP, and an SMTP server, for development and tests.

It records every call and every email, reports repeated Idempotency-Keys, and can be told to
answer slowly, fail a share of calls, time out or refuse (per system). Not for production.
"""

from hookstream_tools.sandbox.servers import SandboxServers
from hookstream_tools.sandbox.systems import SYSTEMS, Faults, Sandbox

__all__ = ["SYSTEMS", "Faults", "Sandbox", "SandboxServers"]
