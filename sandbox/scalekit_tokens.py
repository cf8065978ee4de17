"""RS256 tokens and the JWKS of the fake Scalekit, with the claims real Scalekit tokens carry.

Claims follow the token claim samples in tests/fixtures/scalekit/token_claims/: access tokens
have ``sub``, ``oid``, ``roles``, ``permissions``, ``iss`` (the environment
URL), ``aud`` ([client id]), ``exp``, ``iat``, ``nbf``, ``jti``, ``sid``,
``client_id`` and ``scope`` but no email; ID tokens add the user's profile.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

ROLE_PERMISSIONS = {"admin": ["billing:read", "billing:manage"], "member": ["billing:read"]}


@dataclass(frozen=True)
class Issuer:
    """Signs tokens for one environment (``iss``) and one application (client id)."""

    key: RSAPrivateKey
    env_url: str
    client_id: str
    lifetime: int = 300

    @classmethod
    def from_pem(cls, pem: bytes, env_url: str, client_id: str, lifetime: int = 300) -> Issuer:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, RSAPrivateKey):
            raise ValueError("the sandbox signing key must be an RSA key")
        return cls(key, env_url.rstrip("/"), client_id, lifetime)

    @property
    def kid(self) -> str:
        """Derived from the public key, so a new key file gets a new kid (as after a rotation)."""
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return "snk_" + hashlib.sha256(der).hexdigest()[:16]

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        public.pop("key_ops", None)  # Scalekit's JWKS says `use` instead
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def access_token(self, grant: dict[str, Any]) -> str:
        """A signed-in user's token; ``grant`` has user_id, organization_id, role, sid and scope."""
        claims = {
            **self._base(grant["user_id"], grant["sid"]),
            "oid": grant["organization_id"],
            "roles": [grant["role"]],
            "permissions": ROLE_PERMISSIONS.get(grant["role"], []),
            "scope": grant.get("scope") or "openid profile email",
        }
        return self._sign(claims)

    def id_token(self, grant: dict[str, Any], user: dict[str, Any]) -> str:
        claims = {
            **self._base(user["id"], grant["sid"]),
            "azp": self.client_id,
            "oid": grant["organization_id"],
            "amr": ["conn_sandbox"],
            "email": user["email"],
            "email_verified": True,
            "name": user["name"],
            "given_name": user["given_name"],
            "family_name": user["family_name"],
        }
        if grant.get("nonce"):
            claims["nonce"] = grant["nonce"]
        return self._sign(claims)

    def client_token(self) -> str:
        """The client-credentials token the SDK asks for when it is built."""
        claims = self._base(self.client_id, None)
        del claims["aud"]
        return self._sign(claims)

    def decode(self, token: str, *, verify_exp: bool = True) -> dict[str, Any]:
        """Claims of a token this issuer signed (logout reads its ID token hint, perhaps expired)."""
        return jwt.decode(
            token,
            self.key.public_key(),
            algorithms=["RS256"],
            audience=self.client_id,
            options={"verify_exp": verify_exp},
        )

    def verify_client_token(self, token: str) -> dict[str, Any]:
        """Claims of a client-credentials token this issuer signed: the management API's bearer."""
        claims = jwt.decode(
            token, self.key.public_key(), algorithms=["RS256"], issuer=self.env_url, options={"verify_aud": False}
        )
        if claims.get("sub") != self.client_id or "oid" in claims:
            raise jwt.InvalidTokenError("not a client-credentials token of this application")
        return claims

    def _base(self, subject: str, sid: str | None) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.env_url,
            "aud": [self.client_id],
            "sub": subject,
            "exp": now + self.lifetime,
            "iat": now,
            "nbf": now,
            "jti": "tkn_" + secrets.token_hex(12),
            "client_id": self.client_id,
        }
        if sid:
            claims["sid"] = sid
        return claims

    def _sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})
