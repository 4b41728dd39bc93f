"""The previous release's code, as a rolling deploy still runs it beside the new one: taken from
git (`git archive`) into a folder, its servers started there as the pods start them
(`python -m services.<name> serve`), each on its own database."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = "services/*/migrations/*"
# What the old servers need of the tree: their code and the generated stubs.
EXPORTED = ("services", "protos/python")


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    if done.returncode:
        raise LookupError(done.stderr.strip() or f"git {' '.join(args)} failed")
    return done.stdout.strip()


def previous_release() -> str:
    """The commit whose code last ran on the schema before the newest migration change: the
    work tree's HEAD when it changes migrations itself, else the parent (on the first-parent
    line, the one a release branch follows) of the newest commit that changed them. Raises
    LookupError where history does not reach it (a shallow clone, no git)."""
    if git("status", "--porcelain", "--", MIGRATIONS):
        return git("rev-parse", "--verify", "HEAD^{commit}")
    changed = git("log", "-1", "--first-parent", "--format=%H", "--", MIGRATIONS)
    if not changed:
        raise LookupError("no commit has changed the migrations")
    return git("rev-parse", "--verify", f"{changed}^1^{{commit}}")


def export(commit: str, into: Path) -> Path:
    """The commit's services and stubs, unpacked under `into`."""
    archive = into / "release.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", commit, *EXPORTED], cwd=REPO_ROOT, stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    archive.unlink()
    return into


def release_env(tree: Path, extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = f"{tree}{os.pathsep}{tree / 'protos' / 'python'}"
    return env | dict(extra)


def migrate(tree: Path, databases: Mapping[str, str]) -> None:
    """Runs the release's own `migrate` command of each service on its database, all at once."""
    env = release_env(tree, {f"{service.upper()}_DATABASE_URL": url for service, url in databases.items()})
    running = {
        service: subprocess.Popen(
            [sys.executable, "-m", f"services.{service}", "migrate"],
            cwd=tree,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for service in databases
    }
    for service, process in running.items():
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 0, f"the previous {service}'s migrate failed:\n{output.decode()[-3000:]}"


@dataclass
class OldServer:
    service: str
    address: str
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def old_servers(
    tree: Path, databases: Mapping[str, str], env: Mapping[str, str], log_dir: Path
) -> Iterator[dict[str, OldServer]]:
    """Starts `serve` of each named service of the release, all at once, and waits until every
    one answers SERVING; stops them (SIGTERM) afterwards."""
    ports = {service: free_port() for service in databases}
    shared = dict(env) | {
        f"{service.upper()}_{what}": value
        for service, url in databases.items()
        for what, value in (
            ("DATABASE_URL", url),
            ("GRPC_HOST", "127.0.0.1"),
            ("GRPC_PORT", str(ports[service])),
            ("METRICS_PORT", str(free_port())),
            ("PAYMENT_TARGET", f"127.0.0.1:{ports.get('payment', 0)}"),
        )
    }
    servers: dict[str, OldServer] = {}
    with ExitStack() as stack:
        for service in databases:
            log = log_dir / f"{service}.log"
            output = stack.enter_context(log.open("wb"))
            process = subprocess.Popen(
                [sys.executable, "-m", f"services.{service}", "serve"],
                cwd=tree,
                env=release_env(tree, shared),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
            servers[service] = OldServer(service, f"127.0.0.1:{ports[service]}", process, log)
        try:
            for server in servers.values():
                _wait_serving(server)
            yield servers
        finally:
            for server in servers.values():
                server.process.terminate()
            for server in servers.values():
                try:
                    server.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    server.process.kill()


def _wait_serving(server: OldServer, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    with grpc.insecure_channel(server.address) as channel:
        health: Any = health_pb2_grpc.HealthStub(channel)  # its type stubs declare no methods
        while True:
            if server.process.poll() is not None:
                raise AssertionError(
                    f"the previous {server.service} exited:\n{server.log.read_text()[-3000:]}"
                )
            try:
                answer = health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the previous {server.service} never served:\n{server.log.read_text()[-3000:]}"
                )
            time.sleep(0.2)
