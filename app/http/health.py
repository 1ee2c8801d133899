"""Liveness and readiness."""

from __future__ import annotations

from litestar import Request, Response, get

from app.http.views import Health


@get("/healthz", summary="Alive", tags=["service"], sync_to_thread=False)
def healthz() -> Health:
    return Health(status="ok")


@get("/readyz", summary="Models loaded and warmed", tags=["service"], sync_to_thread=False)
def readyz(request: Request) -> Response[Health]:
    registry = request.app.state.registry
    models = {name: model.provider for name, model in registry.models.items()}
    if not registry.ready:
        return Response(Health(status="warming up", models=models), status_code=503,
                        headers={"Retry-After": "2"})
    return Response(Health(status="ready", models=models))
