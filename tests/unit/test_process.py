from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hookstream.errors import DevStackError
from hookstream_tools.devstack.kafka import new_cluster_id
from hookstream_tools.devstack.process import ensure_port_free, log_tail, pid_alive, terminate


def test_port_in_use_names_port_and_setting() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(DevStackError, match=rf"port {port} on 127.0.0.1 \(thing\).*set SOME_SETTING"):
            ensure_port_free("127.0.0.1", port, what="thing", setting="SOME_SETTING")


def test_terminate_stops_a_process_and_log_tail_reads_the_end(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert pid_alive(proc.pid)
    assert terminate(proc.pid, timeout_ms=5000) is True
    assert not pid_alive(proc.pid)

    log = tmp_path / "x.log"
    log.write_text("\n".join(f"line {i}" for i in range(100)))
    assert log_tail(log, 3) == "line 97\nline 98\nline 99"
    assert "no log at" in log_tail(tmp_path / "missing.log")


def test_cluster_id_is_a_kafka_uuid_string() -> None:
    cid = new_cluster_id()
    assert len(cid) == 22
    assert set(cid) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_cluster_ids_never_start_with_a_dash() -> None:
    # 0xf8 → base64 '-' first: Kafka's storage tool would read such an id as an option.
    draws = iter([b"\xf8" + b"\x00" * 15, b"\x01" * 16])
    cluster_id = new_cluster_id(lambda: next(draws))
    assert cluster_id == "AQEBAQEBAQEBAQEBAQEBAQ"
    assert len(cluster_id) == 22
