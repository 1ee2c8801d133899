"""The catalogue: features with prices and availability, quotes, packages."""

from __future__ import annotations

from litestar import Controller, Request, get

from app.features.catalogue import Package
from app.http.auth import current_user
from app.http.views import FeatureView
from app.operations.service import OperationsService
from app.pets.thumbnails import style_catalogue


class CatalogueController(Controller):
    tags = ["catalogue"]

    @get("/v1/features", summary="Features, their token price, and whether this deployment runs them")
    async def features(self, service: OperationsService) -> list[FeatureView]:
        views = []
        for feature in service.catalogue.features.values():
            runner = service.runners.get(feature.runner)
            available = runner is not None and runner.available(feature)
            models = runner.models(feature) if available else []
            views.append(FeatureView(
                name=feature.name, title=feature.title, description=feature.description, price=feature.price,
                runner=feature.runner, model=feature.model, models=models, available=available,
            ))
        return views

    @get("/v1/features/{name:str}/quote", summary="Could the caller afford this feature now, and from which grants")
    async def quote(self, request: Request, service: OperationsService, name: str) -> dict:
        user = current_user(request)
        feature = service.catalogue.get(name)
        quote = await service.ledger.quote(user, feature.price)
        return {"feature": feature.name, "price": feature.price, "quote": quote}

    @get("/v1/features/pet-avatar/styles", summary="The pet avatar's styles, each with a preview thumbnail")
    async def pet_styles(self) -> list[dict]:
        return style_catalogue(base_url="/assets/styles")

    @get("/v1/packages", summary="Token packages a user can buy")
    async def packages(self, service: OperationsService) -> list[Package]:
        return service.catalogue.visible_packages()
