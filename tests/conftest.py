from __future__ import annotations

import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from hookstream.db import apply_migrations
from hookstream.kafka import Producer, TopicAdmin, TopicSpec
from hookstream.kafka.headers import EVENT_ID
from hookstream_tools.sandbox import Sandbox, SandboxServers
from psycopg import sql

from tests.keys import TEST_SECRETS_KEYS
from tests.normalizer_helpers import CANONICAL
from tests.sandbox_process import SandboxProcess
from tests.servers import Servers, session_servers

# Partner secrets are stored encrypted: every store a test builds and every service it starts as a
# process (they inherit the environment) use this key, whatever the developer's shell has.
os.environ["HOOKSTREAM_SECRETS_KEYS"] = TEST_SECRETS_KEYS


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(f"tests/{kind}/" in item.nodeid for kind in ("integration", "e2e", "browser")):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    with session_servers(tmp_path_factory.mktemp("stack")) as found:
        yield found


@pytest.fixture(scope="session")
def kafka_bootstrap(servers: Servers) -> str:
    return servers.kafka_bootstrap


@pytest.fixture(scope="session")
def topic_admin(kafka_bootstrap: str) -> TopicAdmin:
    return TopicAdmin(kafka_bootstrap)


def _unique(request: pytest.FixtureRequest, prefix: str, sep: str) -> str:
    base = re.sub(r"[^a-zA-Z0-9]+", sep, request.node.name).strip(sep).lower()[:40]
    return f"{prefix}{sep}{base}{sep}{uuid.uuid4().hex[:8]}"


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A name no other test uses, for topics and consumer groups."""
    return _unique(request, "t", ".")


@pytest.fixture
def database_url(servers: Servers, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database for this test, dropped afterwards."""
    name = _unique(request, "t", "_")
    admin_url = psycopg.conninfo.make_conninfo(servers.database_url, dbname="postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield psycopg.conninfo.make_conninfo(servers.database_url, dbname=name)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
async def migrated_database_url(database_url: str) -> str:
    """A fresh database with every bundled migration applied."""
    await apply_migrations(database_url)
    return database_url


@pytest.fixture
def service_name(request: pytest.FixtureRequest) -> str:
    """A consumer service name no other test uses (its group and retry/DLQ topics derive from it)."""
    return _unique(request, "svc", "-")


@pytest.fixture
async def publish(kafka_bootstrap: str, unique_name: str) -> AsyncIterator[Any]:
    """``await publish(*events)``: canonical order events onto this test's own topic (``publish.topic``)."""
    topic = f"{unique_name}.canonical"
    TopicAdmin(kafka_bootstrap).ensure_topics([TopicSpec(topic, 3, 3_600_000)])
    async with Producer(kafka_bootstrap) as producer:

        async def send(*events: dict[str, Any]) -> None:
            for e in events:
                headers = [*CANONICAL.headers, (EVENT_ID, e["event_id"].encode())]
                await producer.send(topic, CANONICAL.encode(e), key=e["order_id"], headers=headers)

        send.topic = topic  # type: ignore[attr-defined]
        yield send


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServers]:
    """The sandbox's systems and SMTP server in this process, on free ports."""
    async with SandboxServers(Sandbox(seed=1)) as servers:
        yield servers


@pytest.fixture
def sandbox_process() -> Iterator[SandboxProcess]:
    """The sandbox as `hookstream run sandbox` (its own process), stopped afterwards."""
    process = SandboxProcess("--seed", "11")
    try:
        yield process
    finally:
        process.stop()
