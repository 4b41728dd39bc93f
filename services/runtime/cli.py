"""`python -m services.<name> serve | migrate | worker`: the same three commands for every service.

Nothing heavy is imported before the command is known: the worker must monkey-patch
eventlet before anything imports grpc or a database driver.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.runtime.server import ServiceDefinition


def _load_definition(path: str) -> ServiceDefinition:
    module, _, attribute = path.partition(":")
    definition: ServiceDefinition = getattr(importlib.import_module(module), attribute)
    return definition


def main(service: str, definition_path: str, workers_path: str, argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m services.{service}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the gRPC server (the database must be migrated)")
    commands.add_parser("migrate", help="bring the database to the latest migration")
    commands.add_parser("worker", help="run the event worker: outbox relay, consumers, timers")
    args = parser.parse_args(argv)

    if args.command == "worker":
        # Replace this process with the eventlet worker host, patched before any import.
        os.execv(sys.executable, [sys.executable, "-m", "services.runtime.workers", workers_path])  # noqa: S606

    if args.command == "serve":
        from services.runtime.processes import serve_on_every_core

        # Before the service is imported: the supervisor of several processes needs none of it.
        serve_on_every_core(["-m", f"services.{service}", "serve"])
    definition = _load_definition(definition_path)
    if args.command == "migrate":
        from services.runtime.config import ServiceConfig
        from services.runtime.migrations import upgrade

        config = ServiceConfig.from_env(definition.name, definition.grpc_port, definition.metrics_port)
        upgrade(config.database_url, definition.migrations)
        print(f"{definition.name}: database at the latest migration")
    else:
        from services.runtime.server import serve

        asyncio.run(serve(definition))
