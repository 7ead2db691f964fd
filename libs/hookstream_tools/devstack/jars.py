"""Resolve the Apache Kafka broker and tools jars from Maven Central, once.

The jars land in ``<cache_dir>/kafka-<version>-<pom hash>/libs`` (outside the work
tree), written to a temporary folder first and renamed when complete, so an
interrupted download never leaves a half classpath behind.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from hookstream.errors import DevStackError

from hookstream_tools.devstack.process import require_command

_VERSION = re.compile(r"<kafka\.version>([^<]+)</kafka\.version>")
_DOWNLOADED = re.compile(r"Downloaded from \S+: (\S+)")

JAVA_HINT = (
    "the local Kafka broker needs Java 17 or newer; install a JDK (Debian/Ubuntu:"
    " `apt-get install openjdk-17-jdk-headless`) or set KAFKA_BOOTSTRAP_SERVERS to an existing broker"
)
MAVEN_HINT = (
    "the Kafka jars are resolved from Maven Central with Maven; install it (Debian/Ubuntu:"
    " `apt-get install maven`) or set KAFKA_BOOTSTRAP_SERVERS to an existing broker"
)

Progress = Callable[[int, str], None]


def resource_path(name: str) -> Path:
    return Path(str(resources.files("hookstream_tools.devstack").joinpath("resources", name)))


class KafkaJars:
    def __init__(self, cache_dir: Path, pom: Path | None = None) -> None:
        self.pom = pom or resource_path("pom.xml")
        text = self.pom.read_text()
        match = _VERSION.search(text)
        if match is None:
            raise DevStackError(f"{self.pom} does not declare <kafka.version>")
        self.version = match.group(1)
        digest = hashlib.sha256(text.encode()).hexdigest()[:10]
        self.home = cache_dir.expanduser().resolve() / f"kafka-{self.version}-{digest}"
        self.libs = self.home / "libs"

    @property
    def resolved(self) -> bool:
        return (self.home / ".complete").exists() and any(self.libs.glob("kafka_2.13-*.jar"))

    @property
    def classpath(self) -> str:
        return str(self.libs / "*")

    def resolve(self, progress: Progress | None = None) -> bool:
        """Download the jars unless cached; return True if a download happened."""
        if self.resolved:
            return False
        mvn = require_command("mvn", MAVEN_HINT)
        self.home.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="libs-", dir=self.home))
        command = [
            mvn,
            "-B",
            "-f",
            str(self.pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
            "-DincludeScope=runtime",
        ]
        tail: list[str] = []
        downloaded = 0
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=self.home
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                tail = [*tail[-39:], line.rstrip()]
                found = _DOWNLOADED.search(line)
                if found and progress is not None:
                    downloaded += 1
                    progress(downloaded, found.group(1).rsplit("/", 1)[-1])
        if proc.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise DevStackError(
                f"resolving Apache Kafka {self.version} from Maven Central failed (mvn exit {proc.returncode}):\n"
                + "\n".join(tail)
            )
        if self.libs.exists():
            shutil.rmtree(self.libs)
        staging.rename(self.libs)
        (self.home / ".complete").write_text(self.version + "\n")
        return True

    def java_command(self, main_class: str, *args: str, jvm: list[str] | None = None) -> list[str]:
        java = require_command("java", JAVA_HINT)
        log4j = f"-Dlog4j2.configurationFile={resource_path('log4j2.properties')}"
        return [java, *(jvm or []), log4j, "-cp", self.classpath, main_class, *args]

    def run_tool(self, main_class: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run one of Kafka's own command-line tools (e.g. ConsumerGroupCommand) from these jars."""
        if not self.resolved:
            raise DevStackError("the Kafka jars are not resolved yet: run `hookstream dev fetch`")
        command = self.java_command(main_class, *args, jvm=["-Xmx256m", "-Dhookstream.kafka.log.level=WARN"])
        return subprocess.run(command, capture_output=True, text=True, check=False)
