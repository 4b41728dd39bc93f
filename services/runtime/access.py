"""Which methods may be called without a token, as the contracts say it
(`option (asan.common.v1.access).anonymous = true`)."""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import MethodDescriptor

from asan.common.v1 import options_pb2


def is_anonymous(method: MethodDescriptor) -> bool:
    options = method.GetOptions()
    return options.HasExtension(options_pb2.access) and options.Extensions[options_pb2.access].anonymous


def anonymous_methods(grpc_services: Iterable[str]) -> frozenset[str]:
    """Full method names ("/pkg.Service/Method") of the services' methods open without a token.
    The services' stub modules must have been imported (they fill the descriptor pool)."""
    pool = descriptor_pool.Default()
    return frozenset(
        f"/{service.full_name}/{method.name}"
        for service in map(pool.FindServiceByName, grpc_services)
        for method in service.methods
        if is_anonymous(method)
    )
