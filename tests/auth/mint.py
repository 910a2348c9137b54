#!/usr/bin/env python3
"""mint.py KEY_FILE HEADER CLAIMS: prints a JWT over the JSON texts HEADER
and CLAIMS, as they are, signed HMAC-SHA256 with the bytes of KEY_FILE
('-': no signature, as alg none has).  The standard library only, as in
the README's producer: the auth suite's maker of tokens greet-producer
would never sign (alg none, a lower-case alg, a wrong key, any claims)."""
import base64
import hashlib
import hmac
import sys


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


key_file, header, claims = sys.argv[1:4]
signing_input = b64url(header.encode()) + "." + b64url(claims.encode())
signature = ""
if key_file != "-":
    with open(key_file, "rb") as f:
        key = f.read()
    signature = b64url(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())
print(signing_input + "." + signature)
