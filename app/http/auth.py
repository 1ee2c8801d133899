"""Who is calling. App users: the development header (TRIALZONE_DEV_USER_HEADER, off unless set;
the app warns loudly when it is on). Staff: bearer credentials from settings."""

from __future__ import annotations

import hmac
import re

from litestar import Request

from app.errors import Forbidden, Unauthorized
from app.settings import Settings

USER_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")


def current_user(request: Request) -> str:
    settings: Settings = request.app.state.settings
    if settings.dev_user_header:
        user = request.headers.get(settings.dev_user_header)
        if user is not None:
            if not USER_ID.match(user):
                raise Unauthorized("the user id has characters we do not accept")
            return user
    raise Unauthorized("send the user's credentials", headers={"WWW-Authenticate": "Bearer"})


def require_role(request: Request, role: str) -> str:
    """Staff roles are bearer tokens from settings; a role with no token configured is off."""
    settings: Settings = request.app.state.settings
    expected = getattr(settings, f"{role}_token")
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not token or scheme.lower() != "bearer":
        raise Unauthorized(f"the {role} credential is required", headers={"WWW-Authenticate": "Bearer"})
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        raise Forbidden(f"this credential does not grant the {role} role")
    return role
