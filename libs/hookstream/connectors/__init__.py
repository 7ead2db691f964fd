"""Adapters for the external systems workflows talk to, each behind a small interface."""

from hookstream.connectors.http import Endpoint, HttpConnector, SystemApi, SystemRejected, SystemUnavailable

__all__ = ["Endpoint", "HttpConnector", "SystemApi", "SystemRejected", "SystemUnavailable"]
