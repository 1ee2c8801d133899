"""Who is calling.

App users send ``Authorization: Bearer <JWT>`` issued by the carrier's login system. The token is
verified with PyJWT against keys from settings: an HS256 secret (TRIALZONE_JWT_HS256_SECRET)
and/or public keys (TRIALZONE_JWT_PUBLIC_KEY_FILE: PEM public keys or certificates, or a JWKS
JSON file). The algorithm is pinned by the key that verifies it (HS256 only with the secret;
RS*/PS*/ES*/EdDSA only with a public key of that type; never ``none``). ``exp`` and ``sub`` are
required, ``nbf`` is checked, ``iss``/``aud`` when configured, with 30 s of leeway. The user id
is ``sub``, and must match ``USER_ID``.

The development header (TRIALZONE_DEV_USER_HEADER) is read only when it is configured (the app
logs a loud warning at startup) and only when the request carries no Authorization header: a
bearer token always wins, and a bad one is 401, never a fall back to the header.

Staff roles (``admin``, ``support``, ``qa``) come from static bearer credentials in settings
(TRIALZONE_ADMIN_TOKEN, ..._SUPPORT_TOKEN, ..._QA_TOKEN; unset = role off) or from a JWT whose
roles claim (TRIALZONE_JWT_ROLES_CLAIM, default ``roles``) lists the role. ``require_role``
answers the operator's identity (the JWT's ``sub``, or the role name for a static credential)
so journaled staff actions can name who did them.

Nothing here ever puts a credential, key or token into a log line or an error body.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from litestar.connection import ASGIConnection

from app.errors import Forbidden, Unauthorized
from app.settings import Settings

log = logging.getLogger(__name__)

USER_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")
ROLES = ("admin", "support", "qa")
MAX_TOKEN_CHARS = 8192  # a JWT larger than this is refused unparsed
ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"})
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----.+?-----END \1-----", re.S)
_SCOPE_KEY = "trialzone.identity"
_BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="trialzone"'}
_INVALID_TOKEN = {"WWW-Authenticate": 'Bearer realm="trialzone", error="invalid_token"'}
# QA acts as a flagged test user with its credential plus this header (app/http/qa.py marks the
# request in the scope under TEST_USER_SCOPE after a database lookup; nothing else does).
TEST_USER_HEADER = "x-test-user"
TEST_USER_SCOPE = "trialzone.test_user"


class AuthConfigError(ValueError):
    """The key material in settings is unusable: raised when the app is built, never per request."""


@dataclass(frozen=True)
class VerifyingKey:
    key: Any  # a cryptography public key, or the HS256 secret (bytes)
    algorithm: str  # the only algorithm this key verifies
    kid: str | None = None


@dataclass(frozen=True)
class Claims:
    subject: str
    roles: frozenset[str]


@dataclass(frozen=True)
class Staff:
    """An authenticated staff caller: ``operator`` names who (JWT sub, or the role for a static
    credential), ``role`` is the role that let them in, ``via`` how they proved it."""

    operator: str
    role: str
    via: str  # "token" (static credential) or "jwt"

    @property
    def name(self) -> str:
        """How a journal names the operator: ``admin`` or ``jdoe (support)``."""
        return self.operator if self.via == "token" else f"{self.operator[:110]} ({self.role})"  # fits 128


class Authenticator:
    """Key material and credentials, loaded once per app (a bad key file fails at startup)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.keys: list[VerifyingKey] = []
        if settings.jwt_hs256_secret:
            secret = settings.jwt_hs256_secret.encode()
            if len(secret) < 32:
                log.warning("TRIALZONE_JWT_HS256_SECRET is shorter than 32 bytes; use a longer random secret")
            self.keys.append(VerifyingKey(secret, "HS256"))
        if settings.jwt_public_key_file:
            self.keys.extend(load_public_keys(Path(settings.jwt_public_key_file)))
        self.audience = [a.strip() for a in (settings.jwt_audience or "").split(",") if a.strip()] or None
        self.staff_tokens = [(role, token.encode()) for role in ROLES
                             if (token := getattr(settings, f"{role}_token", None))]

    @property
    def jwt_enabled(self) -> bool:
        return bool(self.keys)

    # --- JWT ---------------------------------------------------------------------------------

    def verify(self, token: str) -> Claims:
        """The verified claims of an app or staff JWT; any fault is 401 ``unauthorized``."""
        if not self.keys:
            raise Unauthorized("bearer tokens are not accepted by this deployment", headers=_INVALID_TOKEN)
        if len(token) > MAX_TOKEN_CHARS:
            raise Unauthorized("the bearer token is too long", headers=_INVALID_TOKEN)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("the bearer token is not a well-formed JWT", headers=_INVALID_TOKEN) from None
        algorithm, kid = header.get("alg"), header.get("kid")
        candidates = [k for k in self.keys if k.algorithm == algorithm and (kid is None or k.kid in (None, kid))]
        if not isinstance(algorithm, str) or not candidates:
            raise Unauthorized("the token's algorithm or key is not one this service accepts", headers=_INVALID_TOKEN)
        settings = self.settings
        require = ["exp", "sub"] + (["iss"] if settings.jwt_issuer else []) + (["aud"] if self.audience else [])
        claims: dict | None = None
        failure: jwt.PyJWTError | None = None
        for candidate in candidates:
            try:
                claims = jwt.decode(
                    token, candidate.key, algorithms=[candidate.algorithm], audience=self.audience,
                    issuer=settings.jwt_issuer or None, leeway=settings.jwt_leeway_seconds,
                    options={"require": require, "verify_aud": bool(self.audience), "verify_nbf": True,
                             "verify_exp": True, "verify_iss": bool(settings.jwt_issuer)},
                )
                break
            except jwt.InvalidSignatureError as exc:  # another key of the same type may still match
                failure = exc
            except jwt.PyJWTError as exc:
                failure = exc
                break
        if claims is None:
            raise Unauthorized(_explain(failure), headers=_INVALID_TOKEN)
        subject = claims.get("sub")
        if not isinstance(subject, str) or not USER_ID.match(subject):
            raise Unauthorized("the token's subject is not a valid user id", headers=_INVALID_TOKEN)
        return Claims(subject=subject, roles=_roles(claims.get(settings.jwt_roles_claim)))

    # --- static staff credentials ---------------------------------------------------------------

    def staff_role(self, token: str) -> str | None:
        """The role a static credential grants; every configured credential is compared (constant
        time), so timing tells nothing about which roles exist."""
        given = token.encode()
        found = None
        for role, expected in self.staff_tokens:
            if hmac.compare_digest(given, expected):
                found = found or role
        return found


def _explain(exc: jwt.PyJWTError | None) -> str:
    """A fixed sentence per failure: never the token, never the library's own message."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "the token has expired"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "the token is not valid yet"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "the token was issued for another audience"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "the token was issued by someone else"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"the token lacks the {exc.claim!r} claim" if exc.claim in ("exp", "sub", "iss", "aud") \
            else "the token lacks a required claim"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "the token's signature does not verify"
    return "the bearer token is not valid"


def _roles(value: object) -> frozenset[str]:
    """A roles claim as a list of names or one space-separated string; unknown names are dropped."""
    if isinstance(value, str):
        names = value.split()
    elif isinstance(value, list):
        names = [v for v in value if isinstance(v, str)]
    else:
        names = []
    return frozenset(n for n in names if n in ROLES)


# --- key files -------------------------------------------------------------------------------------

def load_public_keys(path: Path) -> list[VerifyingKey]:
    """PEM (one or more public keys or certificates) or JWKS (``{"keys": [...]}`` or one JWK),
    told apart by sniffing the content. Each key verifies only the algorithm its type implies
    (or the JWK's own ``alg``). Symmetric JWKs and private keys are refused."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AuthConfigError(f"TRIALZONE_JWT_PUBLIC_KEY_FILE cannot be read ({exc.strerror})") from None
    stripped = data.strip()
    if stripped.startswith(b"{"):
        keys = _jwks_keys(stripped)
    elif b"-----BEGIN" in stripped:
        keys = _pem_keys(stripped)
    else:
        raise AuthConfigError("TRIALZONE_JWT_PUBLIC_KEY_FILE is neither PEM nor JWKS JSON")
    if not keys:
        raise AuthConfigError("TRIALZONE_JWT_PUBLIC_KEY_FILE holds no usable public key")
    return keys


def _algorithms_for(key: Any) -> tuple[str, ...]:
    """The algorithms a public key may verify, its default first."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise AuthConfigError(f"an RSA key in TRIALZONE_JWT_PUBLIC_KEY_FILE has {key.key_size} bits; "
                                  "at least 2048 are required")
        return ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _EC_ALGORITHMS:
        return (_EC_ALGORITHMS[key.curve.name],)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return ("EdDSA",)
    raise AuthConfigError(f"unsupported public key type in TRIALZONE_JWT_PUBLIC_KEY_FILE: {type(key).__name__}")


def _pem_keys(data: bytes) -> list[VerifyingKey]:
    keys = []
    for block in _PEM_BLOCK.finditer(data):
        kind = block.group(1).decode()
        if "PRIVATE" in kind:
            raise AuthConfigError("TRIALZONE_JWT_PUBLIC_KEY_FILE holds a private key; give only public keys")
        try:
            if kind == "CERTIFICATE":
                key = x509.load_pem_x509_certificate(block.group(0)).public_key()
            else:
                key = load_pem_public_key(block.group(0))
        except ValueError:
            raise AuthConfigError(f"a {kind} block in TRIALZONE_JWT_PUBLIC_KEY_FILE cannot be read") from None
        keys.append(VerifyingKey(key, _algorithms_for(key)[0]))
    return keys


def _jwks_keys(data: bytes) -> list[VerifyingKey]:
    try:
        document = json.loads(data)
    except ValueError:
        raise AuthConfigError("TRIALZONE_JWT_PUBLIC_KEY_FILE is not valid JSON") from None
    entries = document.get("keys") if isinstance(document, dict) and "keys" in document else [document]
    if not isinstance(entries, list):
        raise AuthConfigError("the JWKS file's 'keys' must be a list")
    keys = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        if entry.get("kty") == "oct":
            raise AuthConfigError(f"JWK {i} is a symmetric key; use TRIALZONE_JWT_HS256_SECRET for HS256")
        if "d" in entry:
            raise AuthConfigError(f"JWK {i} is a private key; publish only public keys")
        if entry.get("use", "sig") != "sig":
            continue
        algorithm = entry.get("alg")
        if algorithm is not None and algorithm not in ASYMMETRIC:
            raise AuthConfigError(f"JWK {i} names algorithm {str(algorithm)[:20]!r}, which is not accepted")
        try:
            jwk = jwt.PyJWK(entry, algorithm)
        except jwt.PyJWTError:
            raise AuthConfigError(f"JWK {i} cannot be read as a public key") from None
        if jwk.algorithm_name not in ASYMMETRIC:
            raise AuthConfigError(f"JWK {i} is not an asymmetric signing key")
        allowed = _algorithms_for(jwk.key)
        if algorithm is None:
            algorithm = allowed[0]
        elif algorithm not in allowed:
            raise AuthConfigError(f"JWK {i}: its alg does not fit its key type")
        kid = entry.get("kid")
        keys.append(VerifyingKey(jwk.key, algorithm, kid if isinstance(kid, str) else None))
    return keys


# --- per request -----------------------------------------------------------------------------------

def authenticator(connection: ASGIConnection) -> Authenticator:
    """The app's Authenticator (built in create_app; built here on first use otherwise)."""
    state = connection.app.state
    settings: Settings = state.settings
    auth = getattr(state, "authenticator", None)
    if auth is None or auth.settings is not settings:
        auth = state.authenticator = Authenticator(settings)
    return auth


def bearer_token(connection: ASGIConnection) -> str | None:
    """The token of ``Authorization: Bearer <token>``; None without an Authorization header;
    401 for any other scheme or an empty token."""
    header = connection.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send the credential as 'Authorization: Bearer <token>'", headers=_BEARER_CHALLENGE)
    return token


def _cached(connection: ASGIConnection, key: str, compute):
    """Authentication runs at most once per request (the rate limiter and the handler share it);
    a failure is cached too and raised again."""
    cache = connection.scope.setdefault(_SCOPE_KEY, {})  # type: ignore[typeddict-item]
    if key not in cache:
        try:
            cache[key] = (True, compute())
        except (Unauthorized, Forbidden) as exc:
            cache[key] = (False, exc)
    ok, value = cache[key]
    if not ok:
        raise value
    return value


def current_user(request: ASGIConnection) -> str:
    """The app user's id: a bearer JWT's ``sub``; else, only where configured, the dev header."""
    return _cached(request, "user", lambda: _current_user(request))


def _current_user(request: ASGIConnection) -> str:
    settings: Settings = request.app.state.settings
    test_user = request.headers.get(TEST_USER_HEADER)
    if test_user is not None:  # only the QA credential, only for a flagged test user
        require_staff(request, "qa")
        if request.scope.get(TEST_USER_SCOPE) != test_user:
            raise Forbidden("X-Test-User must name a test user made in the QA console")
        return test_user
    token = bearer_token(request)
    if token is not None:
        return authenticator(request).verify(token).subject
    if settings.dev_user_header:
        user = request.headers.get(settings.dev_user_header)
        if user is not None:
            if not USER_ID.match(user):
                raise Unauthorized("the user id has characters we do not accept", headers=_BEARER_CHALLENGE)
            return user
    raise Unauthorized("send the user's credentials", headers=_BEARER_CHALLENGE)


def require_staff(request: ASGIConnection, roles: str | Iterable[str]) -> Staff:
    """The staff caller if they hold one of ``roles``: no credential 401, a bad JWT 401, a valid
    credential without the role 403."""
    wanted = frozenset([roles] if isinstance(roles, str) else roles)
    unknown = wanted - set(ROLES)
    if unknown:
        raise ValueError(f"unknown staff role(s): {sorted(unknown)}")
    staff = _cached(request, "staff", lambda: _staff(request))
    if staff is None:
        raise Forbidden(f"this credential does not grant the {_names(wanted)} role")
    via, operator, held = staff
    granted = sorted(wanted & held)
    if not granted:
        raise Forbidden(f"this credential does not grant the {_names(wanted)} role")
    return Staff(operator=operator, role=granted[0], via=via)


def require_role(request: ASGIConnection, role: str | Iterable[str]) -> str:
    """Like ``require_staff``; answers the operator identity (JWT sub, or the role name for a
    static credential). ``role`` may be a set where an endpoint is shared by several roles."""
    return require_staff(request, role).operator


def staff_name(request: ASGIConnection, role: str | Iterable[str]) -> str:
    """The operator as a journal should name them (``admin``, ``jdoe (support)``)."""
    return require_staff(request, role).name


def staff_guard(*roles: str):
    """A Litestar guard: the caller holds one of ``roles``, checked before the body is parsed
    (handlers still name their exact roles with ``require_role``)."""
    wanted = frozenset(roles)

    def guard(connection: ASGIConnection, _handler: object) -> None:
        require_staff(connection, wanted)

    guard.__qualname__ = guard.__name__ = f"staff_guard_{'_'.join(sorted(wanted))}"
    return guard


def _staff(request: ASGIConnection) -> tuple[str, str, frozenset[str]] | None:
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("a staff credential is required", headers=_BEARER_CHALLENGE)
    auth = authenticator(request)
    role = auth.staff_role(token)
    if role is not None:
        return "token", role, frozenset([role])
    if auth.jwt_enabled and token.count(".") == 2:
        claims = auth.verify(token)
        return "jwt", claims.subject, claims.roles
    return None  # not a credential of ours: 403, as before


def _names(roles: frozenset[str]) -> str:
    return " or ".join(sorted(roles))


def rate_identity(connection: ASGIConnection) -> str:
    """Whom a request is counted against: the verified user or staff operator, else the client
    address. Never raises; an unverified claim never names a user (so forged tokens cannot spend
    someone else's allowance)."""
    try:
        token = bearer_token(connection)
    except Unauthorized:
        token = None
    if token is not None:
        role = authenticator(connection).staff_role(token)
        if role is not None:
            return f"staff:{role}"
    try:
        return f"user:{current_user(connection)}"
    except (Unauthorized, Forbidden):
        pass
    client = connection.client
    return f"ip:{client.host if client else 'unknown'}"


__all__ = ["Authenticator", "AuthConfigError", "Staff", "current_user", "require_role", "require_staff",
           "staff_guard", "staff_name", "rate_identity", "USER_ID", "ROLES", "TEST_USER_HEADER",
           "TEST_USER_SCOPE"]
