"""The webhook receiver: a FastAPI app whose routes are thin wrappers over ``ingest.webhooks``.

``create_app()`` builds it; the lifespan owns one ``AsyncProducer`` for the process. Serve it with
``lakehouse receiver`` (uvicorn, uvloop, httptools, JSON logs) or
``uvicorn ingest.receiver:create_app --factory``. Either way it refuses to start without a
configured webhook secret; in production it serves no API docs, and ``/metrics`` may move to a
port of its own (``LAKEHOUSE_RECEIVER_METRICS_PORT``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from fastapi.routing import APIRoute
from prometheus_client import start_http_server
from starlette.types import ASGIApp, Receive, Scope, Send

from ingest import openapi, webhooks
from ingest.health import BrokerProbe
from ingest.logs import request_id_from, request_id_var
from ingest.metrics import ReceiverMetrics
from ingest.producer import AsyncProducer, producer_config
from ingest.responses import ErrorResponse, Health, WebhookAccepted
from settings import Settings, get_settings

log = logging.getLogger("ingest.receiver")


class ReceiverConfigError(RuntimeError):
    """The receiver cannot start with these settings; the message says what to set."""


def require_secrets(settings: Settings) -> None:
    """No webhook is accepted with a secret nobody configured: refuse to start without one."""
    if not settings.stripe_webhook_secrets:
        raise ReceiverConfigError(
            "no webhook secret is configured: set LAKEHOUSE_STRIPE_WEBHOOK_SECRETS to your "
            "Stripe endpoint secret(s) (whsec_…, comma separated). The embedded stack "
            "(`lakehouse up`, `lakehouse demo`) passes a development secret to the receiver it "
            "starts."
        )


# --- dependencies -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Intake:
    """What the webhook route needs, built once per app by the lifespan."""

    settings: Settings
    producer: AsyncProducer
    metrics: ReceiverMetrics


async def _metrics(request: Request) -> ReceiverMetrics:
    return request.app.state.metrics


async def _probe(request: Request) -> BrokerProbe:
    return request.app.state.probe


MetricsDep = Annotated[ReceiverMetrics, Depends(_metrics)]
ProbeDep = Annotated[BrokerProbe, Depends(_probe)]


class DirectRoute(APIRoute):
    """A documented route whose endpoint takes the bare ``Request`` and returns a ``Response``.

    FastAPI's extension point for custom routes (``get_route_handler``): OpenAPI still shows the
    route, its body and responses, but requests skip parameter and dependency solving, which took
    about a quarter of the app's CPU per webhook when profiled.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return self.endpoint


# --- request context --------------------------------------------------------------------------
class RequestContextMiddleware:
    """Pure ASGI: take ``X-Request-ID`` (or make one), expose it to the app, echo it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
        request_id = request_id_from(incoming.decode("latin-1") if incoming else None)
        scope.setdefault("state", {})["request_id"] = request_id
        echoed = (b"x-request-id", request_id.encode())

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        token = request_id_var.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


# --- app --------------------------------------------------------------------------------------
@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One producer (and its readiness probe) for the life of the app; flushed at shutdown."""
    settings: Settings = app.state.settings
    deadline_s = settings.receiver_produce_timeout_s
    config = producer_config(settings.kafka_client_config(), deadline_s)
    producer = AsyncProducer(config, deadline_s)
    app.state.intake = Intake(settings, producer, app.state.metrics)
    app.state.probe = BrokerProbe(producer)
    metrics_server = None
    if settings.receiver_metrics_port is not None:
        metrics_server, _ = start_http_server(
            settings.receiver_metrics_port, settings.receiver_host, app.state.metrics.registry
        )
    log.info("receiver started", extra={"fields": {"bootstrap": settings.bootstrap_servers}})
    try:
        yield
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
            metrics_server.server_close()
        await asyncio.to_thread(producer.close)
        log.info("receiver stopped")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The receiver app; ``settings`` default to ``get_settings()``.

    Raises ``ReceiverConfigError`` when no webhook secret is configured.
    """
    settings = settings or get_settings()
    require_secrets(settings)
    docs = settings.openapi_enabled
    app = FastAPI(
        title="Payments Lakehouse receiver",
        summary="Verifies Stripe webhooks and writes them to the broker before answering 2xx.",
        version="0.1.0",
        lifespan=lifespan,
        openapi_url="/openapi.json" if docs else None,
        docs_url="/docs" if docs else None,
        redoc_url=None,
        # FastAPI's built-in OpenTelemetry hooks cost a check per request; /metrics is Prometheus
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.metrics = ReceiverMetrics()
    app.router.add_api_route(
        "/webhooks/stripe",
        receive_stripe_webhook,
        methods=["POST"],
        response_model=WebhookAccepted,
        responses=openapi.WEBHOOK_RESPONSES,
        summary="Receive a Stripe webhook",
        description=openapi.WEBHOOK_DESCRIPTION,
        openapi_extra=openapi.WEBHOOK_OPENAPI_EXTRA,
        tags=["webhooks"],
        route_class_override=DirectRoute,
    )
    _add_health_routes(app, metrics=settings.receiver_metrics_port is None)
    app.add_middleware(RequestContextMiddleware)
    return app


def _add_health_routes(app: FastAPI, metrics: bool) -> None:
    """Liveness, readiness and (unless served on a port of its own by the lifespan) /metrics."""
    app.add_api_route("/health/live", live, methods=["GET"], response_model=Health, tags=["health"])
    app.add_api_route(
        "/health/ready",
        ready,
        methods=["GET"],
        response_model=Health,
        responses=openapi.READY_RESPONSES,
        tags=["health"],
    )
    if metrics:
        app.add_api_route(
            "/metrics",
            metrics_endpoint,
            methods=["GET"],
            response_class=PlainTextResponse,
            responses=openapi.METRICS_RESPONSES,
            tags=["health"],
        )


# --- routes -----------------------------------------------------------------------------------
def _json(status: int, content: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status, headers, media_type="application/json")


async def receive_stripe_webhook(request: Request) -> Response:
    """Verify one Stripe delivery and store it; 200 only after the broker acknowledged it.

    Served by a ``DirectRoute``: it gets the bare request, and finds what it needs in app state.
    """
    started = time.perf_counter()
    intake: Intake = request.app.state.intake
    request_id: str = request.state.request_id
    metrics = intake.metrics
    if metrics.in_flight >= intake.settings.receiver_max_concurrent_requests:
        response, outcome, _ = _refused(webhooks.OVERLOADED, request_id, metrics)
        metrics.observe(outcome, time.perf_counter() - started)
        return response
    metrics.in_flight += 1
    try:
        accepted = await webhooks.receive(request, request_id, intake.producer, intake.settings)
    except webhooks.WebhookError as exc:
        response, outcome, fields = _refused(exc, request_id, metrics)
    except Exception as exc:  # a bug of ours: 500, so the provider retries once it is fixed
        response, outcome, fields = _refused(INTERNAL_ERROR, request_id, metrics)
        fields["exception"] = _where(exc)
    else:
        response, outcome, fields = _accepted(accepted, request_id)
    finally:
        metrics.in_flight -= 1
    elapsed = time.perf_counter() - started
    metrics.observe(outcome, elapsed)
    fields |= {
        "outcome": outcome,
        "status": response.status_code,
        "duration_ms": round(elapsed * 1000, 3),
    }
    log.log(
        logging.WARNING if response.status_code >= 500 else logging.INFO,
        "webhook",
        extra={"fields": fields},
    )
    return response


def _accepted(accepted: webhooks.Accepted, request_id: str) -> tuple[Response, str, dict]:
    message, delivery = accepted.message, accepted.delivery
    body = {  # the fields of WebhookAccepted (the documented response_model), built directly
        "received": True,
        "event_id": message.event_id,
        "topic": message.topic,
        "request_id": request_id,
        "dlq_reason": message.dlq_reason,
    }
    fields = {
        "event_id": message.event_id,
        "event_type": message.event_type,
        "topic": message.topic,
        "partition": delivery.partition,
        "offset": delivery.offset,
    }
    if message.dlq_reason:
        fields["dlq_reason"] = message.dlq_reason
    return _json(200, body), "dlq" if message.dlq_reason else "accepted", fields


INTERNAL_ERROR = webhooks.WebhookError(
    500, "internal_error", "the event could not be processed; retry later"
)


def _where(exc: Exception) -> str:
    """The exception's type and where it was raised, never its message (it could quote data)."""
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    return f"{type(exc).__name__} at {frame.filename}:{frame.lineno}"


def _refused(
    exc: webhooks.WebhookError, request_id: str, metrics: ReceiverMetrics
) -> tuple[Response, str, dict]:
    fields: dict[str, Any] = {"error": exc.message}
    if exc.produce_failure:
        metrics.produce_failures.labels(exc.produce_failure).inc()
        fields["produce_error"] = str(exc.__cause__)
    error = ErrorResponse.model_validate(
        {"error": {"code": exc.code, "message": exc.message}, "request_id": request_id}
    )
    return _json(exc.status, error.model_dump(), exc.headers), exc.code, fields


async def live() -> Health:
    """The process answers."""
    return Health(status="ok")


async def ready(probe: ProbeDep, response: Response) -> Health:
    """200 while the broker is reachable (checked at most a couple of seconds ago), else 503."""
    problem = await probe.problem()
    if problem is None:
        return Health(status="ok")
    response.status_code = 503
    return Health(status="unavailable", dependency=probe.dependency, detail=problem)


async def metrics_endpoint(metrics: MetricsDep) -> Response:
    """Prometheus exposition of this app's registry."""
    return Response(metrics.render(), media_type=metrics.content_type)
