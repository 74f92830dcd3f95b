#!/usr/bin/env python3
"""Write lld's symbol ordering for the release link (see scripts/link-ordered.sh).

usage: order.py HOT_LIST OBJECT...   (the ordering goes to stdout)"""
import re, subprocess, sys

# Crates (and berth's own engine modules) whose code the runtime never runs, as they appear
# in v0 (and legacy) mangled names: a length then the identifier.
COLD = re.compile(
    r"[0-9](berth_image|berth_registry|berth_store|berth_layer|ureq|rustls|rustls_pki_types|"
    r"rustls_native_certs|webpki|ring|redb|flate2|miniz_oxide|zlib_rs|zstd|zstd_safe|zstd_sys|"
    r"tar|base64|sha2|url|idna|http|httparse|tokio|hyper|axum|h2|indicatif|console|"
    r"hickory_proto|hickory_server|rtnetlink|netlink_packet_route)([A-Z0-9_]|$)|3cmd5image")

hot_names = {}
try:
    with open(sys.argv[1]) as f:
        for i, line in enumerate(f):
            hot_names.setdefault(line.rstrip("\n"), i)
except FileNotFoundError:
    pass

def symbols(obj, demangle):
    args = ["nm", "-p", "--defined-only"] + (["-C"] if demangle else []) + [obj]
    out = subprocess.run(args, capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        f = line.split(" ", 2)
        if len(f) == 3:
            rows.append((f[1], f[2]))
        else:
            rows.append((None, None))
    return rows

found, rest = {}, []
for obj in sys.argv[2:]:
    for (kind, mangled), (_, name) in zip(symbols(obj, False), symbols(obj, True)):
        if kind not in ("t", "T", "w", "W") or COLD.search(mangled):
            continue
        if name in hot_names:
            found.setdefault(name, []).append(mangled)
        else:
            rest.append(mangled)
# The profiled functions, in the profile's order. Those not in rustc's objects are C (glibc,
# libseccomp, from archives): their names are not mangled, and lld finds them by name, so the
# C code the runtime runs joins the compact region instead of trailing after the engine's.
C_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
for name in sorted(hot_names, key=hot_names.get):
    if name in found:
        for m in found[name]:
            print(m)
    elif C_NAME.match(name):
        print(name)
for m in rest:
    print(m)
