"""How long the dashboard's data takes to answer, and how much a first visit downloads.

Usage (a release build, a demo store at the scale to measure):
    cargo build --release
    target/release/kho demo --scale 10 --listen 127.0.0.1:8080 &   # wait for "serving until"
    python3 bench/dashboard.py http://127.0.0.1:8080 <center token> [rounds]

Signs in as a browser would (the pre-session cookie and the form's CSRF token), then asks
for the panels `rounds` times (each a full answer: no If-None-Match) and for the whole
dashboard page, and prints the median and worst server times and the compressed sizes.
Python standard library only.
"""

import gzip
import http.cookiejar
import re
import statistics
import sys
import time
import urllib.parse
import urllib.request

base, token = sys.argv[1], sys.argv[2]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 20

jar = http.cookiejar.CookieJar()
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
form = opener.open(base + "/signin").read().decode()
csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', form).group(1)
body = urllib.parse.urlencode({"token": token, "csrf": csrf, "next": "/dashboard"}).encode()
req = urllib.request.Request(base + "/signin", data=body, headers={"Sec-Fetch-Site": "same-origin"})
opener.open(req).read()


def get(path):
    req = urllib.request.Request(base + path, headers={"Accept-Encoding": "gzip"})
    started = time.perf_counter()
    with opener.open(req) as resp:
        raw = resp.read()
        elapsed = time.perf_counter() - started
        encoded = resp.headers.get("Content-Encoding")
    plain = gzip.decompress(raw) if encoded == "gzip" else raw
    return elapsed, len(raw), len(plain)


panels = [get("/dashboard/panels?year=2021") for _ in range(rounds)]
times = sorted(t for t, _, _ in panels)
page = get("/dashboard")
assets = [get(p) for p in re.findall(r'(/assets/[^"]+)', gzip.decompress(
    opener.open(urllib.request.Request(base + "/dashboard", headers={"Accept-Encoding": "gzip"})).read()
).decode())]
print(f"panels: median {statistics.median(times) * 1000:.0f} ms, worst {times[-1] * 1000:.0f} ms over {rounds}")
print(f"dashboard page: {page[0] * 1000:.0f} ms, {page[1]:,} B compressed ({page[2]:,} B)")
print(f"assets: {sum(a[1] for a in assets):,} B compressed ({sum(a[2] for a in assets):,} B), {len(assets)} files")
print(f"first visit: {page[1] + sum(a[1] for a in assets):,} B compressed")
