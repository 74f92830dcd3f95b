#!/usr/bin/python3
"""A registry token server (distribution's token authentication) for berth's tests.

usage: token-server.py CERT_OUT PORT_OUT USER PASSWORD SERVICE ISSUER LOG

It makes an ECDSA P-256 key and a self-signed certificate (written to CERT_OUT, which the
registry takes as its rootcertbundle), listens on a free 127.0.0.1 port (written to PORT_OUT),
and answers GET /token?service=…&scope=repository:NAME:ACTIONS with an ES256 JWT carrying the
certificate in x5c. Basic credentials USER/PASSWORD get pull and push; anonymous requests get
pull only; wrong credentials get 401. Every token request is appended to LOG."""
import base64, datetime, http.server, json, os, sys, time, urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

cert_out, port_out, user, password, service, issuer, log = sys.argv[1:8]
key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "berth-test-token-issuer")])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (
    x509.CertificateBuilder()
    .subject_name(name)
    .issuer_name(name)
    .public_key(key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(now - datetime.timedelta(days=1))
    .not_valid_after(now + datetime.timedelta(days=2))
    .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    .sign(key, hashes.SHA256())
)
with open(cert_out, "wb") as f:
    f.write(cert.public_bytes(serialization.Encoding.PEM))
x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(sub, access):
    header = {"typ": "JWT", "alg": "ES256", "x5c": [x5c]}
    t = int(time.time())
    claims = {"iss": issuer, "sub": sub, "aud": service, "exp": t + 300, "nbf": t - 10,
              "iat": t, "jti": os.urandom(8).hex(), "access": access}
    signing = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    r, s = decode_dss_signature(key.sign(signing.encode(), ec.ECDSA(hashes.SHA256())))
    return signing + "." + b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        auth = self.headers.get("Authorization") or ""
        sub = ""
        if auth:
            given = None
            if auth.startswith("Basic "):
                try:
                    given = tuple(base64.b64decode(auth[6:]).decode().split(":", 1))
                except ValueError:
                    pass
            if given != (user, password):
                with open(log, "a") as f:
                    f.write("refused\n")
                return self.reply(401, {"errors": [{"code": "UNAUTHORIZED",
                                                    "message": "wrong user name or password"}]})
            sub = user
        access = []
        for scope in query.get("scope", []):
            for one in scope.split(" "):
                parts = one.split(":")
                if len(parts) < 3 or parts[0] != "repository":
                    continue
                allowed = [a for a in parts[-1].split(",")
                           if a == "pull" or (sub and a in ("push", "delete", "*"))]
                access.append({"type": "repository", "name": ":".join(parts[1:-1]),
                               "actions": allowed})
        with open(log, "a") as f:
            f.write("%s %s\n" % (sub or "anonymous", " ".join(query.get("scope", []))))
        t = token(sub, access)
        self.reply(200, {"token": t, "access_token": t, "expires_in": 300})


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_out + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_out + ".tmp", port_out)
server.serve_forever()
