"""Keys made in the test, and a real JWKS server on 127.0.0.1 that publishes them."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from local_http import LocalHttpServer

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_jwk(key: PrivateKey, kid: str) -> dict[str, object]:
    if isinstance(key, rsa.RSAPrivateKey):
        jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        jwk["alg"] = "RS256"
    else:
        jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
        jwk["alg"] = "ES256"
    return {**jwk, "kid": kid, "use": "sig"}


def token(
    key: PrivateKey | str,
    *,
    kid: str | None = "k1",
    algorithm: str = "RS256",
    lifetime: float = 300,
    **claims: object,
) -> str:
    now = int(time.time())
    body = {"iat": now, "exp": now + int(lifetime), **claims}
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(body, key, algorithm=algorithm, headers=headers)


class JwksServer(LocalHttpServer):
    """Serves ``{"keys": [...]}`` at ``/.well-known/jwks.json`` and counts the fetches."""

    def __init__(self, keys: dict[str, PrivateKey]) -> None:
        self.keys = keys
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                body = json.dumps(
                    {"keys": [public_jwk(k, kid) for kid, k in outer.keys.items()]}
                ).encode()
                self.send_response(200 if self.path == "/.well-known/jwks.json" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.serve(Handler)

    @property
    def url(self) -> str:
        return f"{self.root}/.well-known/jwks.json"
