"""Shared runtime of the ASAN services: everything cross-cutting, done once.

A service imports only this package and the generated stubs in `asan.*`.
"""
