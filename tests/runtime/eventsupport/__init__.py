"""Test-only event producer and consumer, and what the worker tests need around them.

`schema` and `harness` are safe in the pytest process; `workers` defines nameko services
and is imported only by the worker subprocess (it runs under eventlet's monkey-patching).
"""
