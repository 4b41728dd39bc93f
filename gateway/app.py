"""The gateway as an ASGI application: routing, limits, token checks, the call, the answer.

Layers, outermost first:
  1. `Gateway.__call__` routes the request first, so that every layer knows the route
     template; it takes or makes the X-Request-Id, returns it with `X-Content-Type-Options:
     nosniff` on every answer, counts the request in the metrics by template, method and
     status, and logs it. Whatever fails unexpectedly below is logged and answered as a JSON
     500, never as the server's text.
  2. CORS, for the configured frontend origins (off when none are).
  3. `dispatch`: the operational endpoints (a small Starlette app that also runs the
     lifespan: channels opened at start-up, closed at shutdown), or a transcoded call.

A transcoded call: address rate limit, token check, subject rate limit, body (size
limit), request message, gRPC call with the route's deadline, response.

The metrics are served on a port of their own (GATEWAY_METRICS_PORT), which only Prometheus
reaches, as the services do: not on the API's port, which the internet reaches.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import grpc
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from gateway.apipage import render
from gateway.auth import Caller, TokenGate
from gateway.backends import Backends
from gateway.config import GatewayConfig
from gateway.contracts import Contracts
from gateway.errors import ErrorResponse, GatewayError, from_rpc_error, internal_error
from gateway.limits import RateLimiter
from gateway.metrics import UNMATCHED_ROUTE, GatewayMetrics
from gateway.openapi import openapi_document
from gateway.routes import Matched, Method, NotAllowed, RouteTable, bindings_of
from gateway.transcoding import build_request, download_disposition, render_response
from services.runtime import tracing
from services.runtime.access import is_anonymous
from services.runtime.auth import TokenVerifier
from services.runtime.config import ConfigError
from services.runtime.context import correlation_id_var, new_correlation_id
from services.runtime.errors import FieldViolation, InvalidArgument, NotFound, ResourceExhausted, ServiceError
from services.runtime.exposition import serve_metrics
from services.runtime.logs import AccessLog

log = logging.getLogger("asan.gateway")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# A client's X-Request-Id is kept if it looks like an id; anything else is replaced.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
LOCALES = ("az", "en", "ru")
MAX_QUERY_FIELDS = 200
_JSON = b"application/json"
_STATE = "asan.gateway"
# On every answer: browsers take the content type as sent (a PDF or JSON is never sniffed
# into something that runs).
_NOSNIFF = (b"x-content-type-options", b"nosniff")


def negotiate_locale(accept_language: str | None) -> str | None:
    """The best of az, en, ru by the header's q-values (the earlier on a tie); None if it
    names none of them."""
    if not accept_language:
        return None
    best, best_q = None, 0.0
    for item in accept_language.split(","):
        tag, _, params = item.strip().partition(";")
        language = tag.strip().split("-", 1)[0].lower()
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                continue
        if language in LOCALES and q > best_q:
            best, best_q = language, q
    return best


class _Ops:
    """The resolution of a request to an operational endpoint."""


OPS = _Ops()


class _BadPath:
    """A path whose variables are not valid percent-encoded UTF-8."""


BAD_PATH = _BadPath()


def _headers(scope: Scope) -> dict[str, str]:
    """The request headers by lower-case name (the last of repeated ones), latin-1 as HTTP has them."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


async def _send(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *(headers or ()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _send_error(send: Send, error: ErrorResponse) -> None:
    await _send(send, error.http_status, error.body(), _JSON, error.headers)


async def _send_method_error(send: Send, method: Method, error: ErrorResponse) -> None:
    """A method's error, in the shape its contract names: Open311's array or a Status."""
    await _send_error(send, error.as_open311() if method.open311_errors else error)


class ClientGone(Exception):
    """The client disconnected while its body was read."""


def _body_too_large(limit: int) -> GatewayError:
    return GatewayError(
        ResourceExhausted(
            message=f"The request body is larger than {limit} bytes.",
            reason="BODY_TOO_LARGE",
            metadata={"max_bytes": str(limit)},
        ),
        http_status_override=413,
    )


async def read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    """The whole body; 413 as soon as it is known to exceed `limit` (by Content-Length, or
    while reading a chunked one)."""
    declared = headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise GatewayError(
                InvalidArgument(
                    message="Content-Length is not a number.",
                    reason="BAD_HEADER",
                    violations=[FieldViolation("Content-Length", "Must be a number.")],
                )
            )
        if int(declared) > limit:
            raise _body_too_large(limit)
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _body_too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class Gateway:
    """The ASGI application. `backends` opens its channels in the lifespan start-up."""

    def __init__(
        self, config: GatewayConfig, contracts: Contracts, verifier: TokenVerifier | None = None
    ) -> None:
        self.config = config
        self.contracts = contracts
        self.bindings = bindings_of(contracts.services)
        self.routes = RouteTable(self.bindings)
        self.backends = Backends(
            {package: config.backends[package] for package in contracts.packages},
            config.tls,
            config.connections_per_backend,
        )
        self.tokens = TokenGate(verifier or TokenVerifier.from_config(config.auth))
        self.metrics = GatewayMetrics()
        self.access_log = AccessLog(log, "http request", config.access_log_per_second)
        self.subject_limiter = RateLimiter(config.subject_rate)
        self.address_limiter = RateLimiter(config.address_rate)
        self.deadlines = {b.method.grpc_path: config.deadline_for(b.method.full_name) for b in self.bindings}
        self.document = openapi_document(self.bindings, contracts.comments)
        self._document_json = json.dumps(self.document, ensure_ascii=False).encode()
        self._page = render(self.document)
        self.ops = Starlette(
            routes=[
                Route("/", self._home),
                Route("/healthz", self._healthz),
                Route("/readyz", self._readyz),
                Route("/openapi.json", self._openapi),
                Route("/docs", self._docs),
            ],
            lifespan=self._lifespan,
        )
        self._ops_paths = frozenset(route.path for route in self.ops.routes if isinstance(route, Route))
        # The port /metrics answers on once started (the configured one, or the one given for 0).
        self.metrics_port = 0
        self._metrics_httpd: Any = None
        self.app: ASGIApp = self.dispatch
        if config.cors_origins:
            self.app = CORSMiddleware(
                self.dispatch,
                allow_origins=list(config.cors_origins),
                allow_methods=sorted({b.http_method for b in self.bindings} | {"GET"}),
                allow_headers=[
                    "Authorization",
                    "Content-Type",
                    "Idempotency-Key",
                    "X-Request-Id",
                    "Accept-Language",
                ],
                expose_headers=["X-Request-Id", "X-Trace-Id", "Retry-After"],
                max_age=600,
            )

    # --- Layer 1: route first, then request id, metrics and the access log ----------------------

    def resolve(self, scope: Scope) -> tuple[str, object]:
        """(route label, what answers): OPS, a Matched call, NotAllowed, BAD_PATH or None."""
        path: str = scope["path"]
        if path in self._ops_paths:
            return path, OPS
        raw = scope.get("raw_path")
        raw_path = raw.decode("latin-1") if raw else path
        try:
            found = self.routes.match(scope["method"], raw_path)
        except ValueError:
            return UNMATCHED_ROUTE, BAD_PATH
        if isinstance(found, Matched):
            return found.binding.route, found
        if isinstance(found, NotAllowed):
            return found.route, found
        return UNMATCHED_ROUTE, None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.ops(scope, receive, send)  # lifespan
            return
        started = time.perf_counter()
        route, target = self.resolve(scope)
        headers = _headers(scope)
        given = headers.get("x-request-id")
        request_id = given if given and _REQUEST_ID.fullmatch(given) else new_correlation_id()
        scope[_STATE] = (target, headers, request_id)
        correlation_id_var.set(request_id)
        method: str = scope["method"]
        status = 500
        started_answer = False
        encoded_id = request_id.encode()

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, started_answer
            if message["type"] == "http.response.start":
                status, started_answer = message["status"], True
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"x-request-id", encoded_id),
                    _NOSNIFF,
                ]
                if span is not None:
                    message["headers"].append(trace_id_header)
            await send(message)

        span = None
        if tracing.SETUP.tracer is not None:
            span = tracing.start_http_server_span(tracing.SETUP.tracer, method, route, headers)
            trace_id_header = (tracing.TRACE_ID_HEADER.encode(), tracing.trace_id_of(span).encode())
        in_flight = self.metrics.in_flight_of(route, method)
        in_flight.inc()
        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception:
            log.exception("gateway failed to answer", extra={"http_method": method, "route": route})
            if started_answer:
                raise  # too late for an answer of our own: the server closes the connection
            await _send_error(send_with_request_id, internal_error())
        finally:
            in_flight.dec()
            seconds = time.perf_counter() - started
            self.metrics.answered(route, method, status, seconds)
            if self.access_log.takes(status < 400, seconds):  # past its rate, counted only
                self.access_log.write(
                    {
                        "http_method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(seconds * 1000, 2),
                    }
                )
            if span is not None:
                tracing.end_http_server_span(span, status)

    # --- Layer 3: operational endpoints or a transcoded call ------------------------------------

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        target, headers, request_id = scope[_STATE]
        locale = negotiate_locale(headers.get("accept-language")) or "en"
        if target is OPS:
            await self.ops(scope, receive, send)
        elif isinstance(target, Matched):
            await self.call(scope, receive, send, target, headers=headers, request_id=request_id)
        elif isinstance(target, NotAllowed):
            error = GatewayError(
                ServiceError(
                    message=f"{scope['method']} is not allowed here; this path takes "
                    f"{', '.join(target.allowed)}.",
                    reason="METHOD_NOT_ALLOWED",
                ),
                http_status_override=405,
            ).response(locale)
            error.status.code = grpc.StatusCode.UNIMPLEMENTED.value[0]
            error.headers.append((b"allow", ", ".join(target.allowed).encode()))
            await _send_error(send, error)
        elif target is BAD_PATH:
            await _send_error(
                send,
                GatewayError(
                    InvalidArgument(
                        message="The path is not valid percent-encoded UTF-8.",
                        reason="BAD_PATH",
                    )
                ).response(locale),
            )
        else:
            await _send_error(
                send,
                GatewayError(
                    NotFound(
                        message="No route has this path; see /openapi.json for the routes.",
                        reason="ROUTE_NOT_FOUND",
                    )
                ).response(locale),
            )

    def _check_limits_and_token(self, scope: Scope, headers: dict[str, str], method: Method) -> Caller | None:
        client = scope.get("client")
        address = client[0] if client else "unknown"
        wait = self.address_limiter.wait_seconds(f"address:{address}")
        if wait:
            raise _rate_limited(wait)
        caller = self.tokens.check(headers.get("authorization"), anonymous=is_anonymous(method.descriptor))
        if caller is not None:
            wait = self.subject_limiter.wait_seconds(caller.key)
            if wait:
                raise _rate_limited(wait)
        return caller

    async def call(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        matched: Matched,
        *,
        headers: dict[str, str],
        request_id: str,
    ) -> None:
        binding = matched.binding
        method = binding.method
        locale = negotiate_locale(headers.get("accept-language"))
        try:
            self._check_limits_and_token(scope, headers, method)
            body = await read_body(receive, headers, self.config.max_body_bytes) if binding.body else b""
            request = build_request(
                binding,
                matched.values,
                _query(scope),
                body,
                content_type=headers.get("content-type", ""),
                idempotency_key=headers.get("idempotency-key"),
            )
        except ClientGone:
            return
        except GatewayError as error:
            await _send_method_error(send, method, error.response(locale or "en"))
            return
        except ServiceError as error:
            await _send_method_error(send, method, GatewayError(error).response(locale or "en"))
            return
        metadata: list[tuple[str, str]] = [("x-request-id", request_id)]
        authorization = headers.get("authorization")
        if authorization:
            metadata.append(("authorization", authorization))
        if locale:
            metadata.append(("accept-language", locale))
        response = await self._ask_backend(method, request, metadata, send)
        if response is None:
            return
        try:
            content, content_type = render_response(binding, response)
        except Exception:
            log.exception("gateway failed to render a response", extra={"grpc_method": method.full_name})
            await _send_method_error(send, method, internal_error())
            return
        answer_headers = []
        if binding.sends_raw_response:
            answer_headers.append((b"content-disposition", download_disposition(binding, request)))
        await _send(send, 200, content, content_type.encode(), answer_headers)

    async def _ask_backend(
        self, method: Method, request: Any, metadata: list[tuple[str, str]], send: Send
    ) -> Any:
        """The backend's answer to `request`, timed and, with tracing on, in a CLIENT span whose
        `traceparent` goes with the call; None once an error has been sent instead."""
        service, name = method.service.full_name, method.descriptor.name
        self.metrics.call_started(service, name)
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        with contextlib.ExitStack() as traced:
            span = None
            if tracing.SETUP.tracer is not None:
                span, trace_headers = traced.enter_context(tracing.client_span(method.grpc_path))
                metadata.extend(trace_headers)
            try:
                return await self.backends.callable(method)(
                    request, timeout=self.deadlines[method.grpc_path], metadata=metadata
                )
            except grpc.aio.AioRpcError as error:
                code = error.code()
                await _send_method_error(send, method, from_rpc_error(error, method.full_name))
                return None
            except Exception:
                code = grpc.StatusCode.UNKNOWN
                log.exception("gateway failed to call", extra={"grpc_method": method.full_name})
                await _send_method_error(send, method, internal_error())
                return None
            finally:
                self.metrics.call_finished(service, name, code, time.perf_counter() - started)
                if span is not None:
                    tracing.end_client_span(span, code)

    # --- Operational endpoints ------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._start_metrics()
        self.backends.open()
        log.info(
            "gateway ready",
            extra={
                "routes": len(self.bindings),
                "backends": self.backends.targets,
                "metrics_port": self.metrics_port,
            },
        )
        try:
            yield
        finally:
            await self.backends.close()
            self._stop_metrics()
            log.info("gateway stopped")

    def _start_metrics(self) -> None:
        try:
            self._metrics_httpd = serve_metrics(
                self.config.metrics_port, self.metrics.registry, self.config.host
            )
        except OSError as error:
            raise ConfigError(f"cannot serve metrics on port {self.config.metrics_port}: {error}") from None
        self.metrics_port = self._metrics_httpd.server_port

    def _stop_metrics(self) -> None:
        if self._metrics_httpd is not None:
            self._metrics_httpd.shutdown()
            self._metrics_httpd.server_close()
            self._metrics_httpd = None

    async def _home(self, request: Request) -> Response:
        return RedirectResponse("/docs")

    async def _healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _readyz(self, request: Request) -> Response:
        """Each backend's gRPC health. Ready while at least one serves ("degraded" unless all
        do): a gateway taken out of rotation for one service's outage would take every other
        service's routes with it, while it answers 503 itself for that service's routes only.
        Not ready when none serves (this replica cannot reach them)."""
        services = [(service.file.package, service.full_name) for service in self.contracts.services]
        health = await self.backends.health(services, within=self.config.readiness_timeout_seconds)
        serving = [status == "SERVING" for status in health.values()]
        status = "ready" if all(serving) else "degraded" if any(serving) else "not ready"
        return JSONResponse({"status": status, "services": health}, status_code=200 if any(serving) else 503)

    async def _openapi(self, request: Request) -> Response:
        return Response(self._document_json, media_type="application/json")

    async def _docs(self, request: Request) -> Response:
        return HTMLResponse(self._page)


def _rate_limited(wait: float) -> GatewayError:
    return GatewayError(
        ResourceExhausted(
            message="Too many requests; try again after the time in Retry-After.", reason="RATE_LIMITED"
        ),
        retry_after_seconds=wait,
    )


def _query(scope: Scope) -> list[tuple[str, str]]:
    raw: bytes = scope.get("query_string", b"")
    if not raw:
        return []
    try:
        return parse_qsl(
            raw.decode("latin-1"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_QUERY_FIELDS,
        )
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument(
            message="The query string is not valid (percent-encoded UTF-8, at most "
            f"{MAX_QUERY_FIELDS} parameters).",
            reason="BAD_QUERY",
        ) from None
