#!/usr/bin/env python3
"""Writes the starting corpus of each fuzz target into fuzz/seeds/<target>/.

Only the standard library and the `openssl` command (for the RS256 seed).
The JWT seeds are valid for the jwt target's keys until 2100, so the fuzzer
starts from tokens that pass and mutates them from there.
"""
import base64, hashlib, hmac, json, pathlib, subprocess

HERE = pathlib.Path(__file__).resolve().parent
KEYS = HERE.parent / "crates" / "auth-core" / "tests" / "keys"
SECRET = b"fuzzing-secret-fuzzing-secret-32"
EXP = 4_102_444_800  # 2100-01-01


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(alg: str, claims: dict, header_extra: dict | None = None) -> str:
    header = {"alg": alg, "typ": "JWT", **(header_extra or {})}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    if alg == "HS256":
        sig = hmac.new(SECRET, signing_input.encode(), hashlib.sha256).digest()
    elif alg == "RS256":
        sig = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(KEYS / "rsa.key")],
            input=signing_input.encode(), capture_output=True, check=True,
        ).stdout
    else:
        sig = b""
    return f"{signing_input}.{b64(sig)}"


def write(target: str, seeds: dict[str, bytes]) -> None:
    folder = HERE / "seeds" / target
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in seeds.items():
        (folder / name).write_bytes(data)


claims = {"iss": "https://issuer.example", "aud": "api", "sub": "alice", "exp": EXP, "scope": "read"}
write("jwt", {
    "hs256": jwt("HS256", claims).encode(),
    "rs256": jwt("RS256", claims).encode(),
    "none": jwt("none", claims).encode(),
    "expired": jwt("HS256", {**claims, "exp": 1}).encode(),
})
# jwt_signed: the harness signs; a seed is `<header> 0x00 <claims>` or claims.
header = json.dumps({"alg": "HS256", "typ": "JWT"}).encode()
write("jwt_signed", {
    "claims": json.dumps(claims).encode(),
    "header-claims": header + b"\x00" + json.dumps(claims).encode(),
    "hs384-kid": json.dumps({"alg": "HS384", "kid": "k1"}).encode() + b"\x00"
    + json.dumps({**claims, "aud": ["other", "api"], "nbf": 1, "roles": ["admin"]}).encode(),
    "nested": json.dumps({**claims, "x": {"y": [1.5, None, True, "\u00e9"]}}).encode(),
    "crit": json.dumps({"alg": "HS256", "crit": ["exp"]}).encode() + b"\x00" + json.dumps(claims).encode(),
})
write("bearer", {
    "plain": b"Bearer abc.def-ghi~+/==",
    "two": b"bearer x\nBearer y",
    "basic": b"Basic dXNlcjpwYXNz",
})
write("cookie", {
    "pairs": b"\x00theme=dark; sid=a=b; sid=second",
    "quoted": b"\x01a=\"q\"\nsid=x",
    "host": b"\x02__Host-s=1; __host-s=2",
})
write("forwarded", {
    "xff": b"\x00203.0.113.9, 10.1.2.3\n2001:db8::7",
    "xff-ports": b"\x03[2001:db8::1]:80, 198.51.100.1:8080, fe80::1%eth0",
    "forwarded": b"\x04for=192.0.2.60;proto=http;by=203.0.113.43, for=\"[2001:db8:cafe::17]:4711\"",
})
answer = {"active": True, "sub": "alice", "iss": "https://idp.example", "aud": ["api"],
          "token_type": "Bearer", "client_id": "web", "exp": EXP, "scope": "read write"}
write("introspection", {
    "active": b"\x00" + json.dumps(answer).encode(),
    "inactive": b"\x00" + b'{"active":false}',
    "error": b"\x05" + b'{"error":"server_error"}',
})
