"""The pages in a real browser: headless Chromium (Debian's chromium + chromium-driver)
driven by Selenium against the real kho binary, with axe-core (npm) injected for
accessibility.

Usage: pages_browser.py <base url> <center token> <services token> <axe.min.js> <screenshot dir>

Prints one JSON object with what the browser saw; the Rust test (tests/tests/it/pages.rs)
compares it with the views' own figures and pushes events while the page stays open.
Commands come on stdin, one per line, so the Rust side can act between steps:
  wait-change <tile id> <old value> -> waits (at most 30 s) until the tile shows another value
  quit
"""

import json
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

base, center, services, axe_path, shots = sys.argv[1:6]


def browser():
    opts = Options()
    opts.add_argument("--headless=new")
    opts.add_argument("--no-sandbox")
    opts.add_argument("--disable-dev-shm-usage")
    opts.add_argument("--window-size=1400,1800")
    opts.add_argument("--lang=vi-VN")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def console_errors(d):
    return [e["message"] for e in d.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def axe(d):
    with open(axe_path, encoding="utf-8") as f:
        d.execute_script(f.read())
    result = d.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations))"
        ".catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e)}]));"
    )
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"], "nodes": len(v.get("nodes", []))}
        for v in result
        if v.get("impact") in ("serious", "critical")
    ]


def sign_in(d, token):
    d.get(base + "/signin")
    box = d.find_element(By.ID, "token")
    box.send_keys(token)
    box.submit()
    WebDriverWait(d, 30).until(lambda d: "/signin" not in d.current_url)


def tile(d, tile_id):
    el = d.find_element(By.ID, "tile-" + tile_id)
    return {
        "value": el.find_element(By.CSS_SELECTOR, ".value").text,
        "target": [t.text for t in el.find_elements(By.CSS_SELECTOR, ".target")],
        "rate": el.get_attribute("data-rate"),
    }


out = {}
d = browser()
try:
    # No session: the dashboard sends to the sign-in page, which passes axe.
    d.get(base + "/dashboard")
    out["anonymous_url"] = d.current_url
    # What a first visit downloads besides the page: the assets, compressed, from a cold cache.
    out["assets_transfer_bytes"] = d.execute_script(
        "return performance.getEntriesByType('resource')"
        ".filter(r => r.name.includes('/assets/')).reduce((n, r) => n + r.transferSize, 0)"
    )
    out["signin_axe"] = axe(d)
    d.save_screenshot(shots + "/signin.png")
    d.get(base + "/")
    out["landing_axe"] = axe(d)
    d.save_screenshot(shots + "/landing.png")

    # A forged session cookie is refused like no cookie.
    d.add_cookie({"name": "kho_session", "value": "0123.9999999999.deadbeef", "path": "/"})
    d.get(base + "/dashboard")
    out["forged_url"] = d.current_url
    d.delete_all_cookies()

    # A wrong token stays on the sign-in page with the reason.
    d.get(base + "/signin")
    d.find_element(By.ID, "token").send_keys("kho_" + "0" * 32 + "_" + "0" * 64)
    d.find_element(By.ID, "token").submit()
    out["wrong_token_error"] = d.find_element(By.ID, "signin-error").text
    # The refused sign-in's 401 is logged by the browser: expected, not a page error.
    console_errors(d)

    # The center signs in and sees every panel.
    sign_in(d, center)
    out["center_url"] = d.current_url
    out["dashboard_timing"] = d.execute_script(
        "const t = performance.getEntriesByType('navigation')[0];"
        "return {response_ms: t.responseEnd - t.requestStart, load_ms: t.loadEventEnd - t.startTime,"
        " transfer_bytes: t.transferSize, body_bytes: t.decodedBodySize};"
    )
    out["center_tiles"] = {
        t.get_attribute("id")[5:]: tile(d, t.get_attribute("id")[5:])
        for t in d.find_elements(By.CSS_SELECTOR, "article.tile")
    }
    out["center_panels"] = [s.get_attribute("id") for s in d.find_elements(By.CSS_SELECTOR, "section.panel")]
    out["center_title"] = d.find_element(By.TAG_NAME, "h1").text
    out["dashboard_axe"] = axe(d)
    d.save_screenshot(shots + "/dashboard.png")
    out["center_console_errors"] = console_errors(d)

    # Drill down: the agency with the most overdue dossiers, from the league table.
    rows = d.find_elements(By.CSS_SELECTOR, "#agencies tbody tr")
    worst = max(rows, key=lambda r: int(r.find_elements(By.TAG_NAME, "td")[-1].text.replace(".", "")))
    agency = worst.get_attribute("data-agency")
    worst.find_element(By.CSS_SELECTOR, "th a").click()
    WebDriverWait(d, 30).until(lambda d: "/dashboard/agency/" in d.current_url)
    out["drill"] = {
        "agency": agency,
        "url": d.current_url,
        "count": int(d.find_element(By.ID, "overdue-count").get_attribute("data-count")),
        "total": d.find_element(By.ID, "overdue-total").text,
        "listed": len(d.find_elements(By.CSS_SELECTOR, "#overdue tbody tr")),
        "title": d.find_element(By.TAG_NAME, "h1").text,
    }
    out["drill_axe"] = axe(d)
    d.save_screenshot(shots + "/agency.png")
    d.back()

    # English: labels change, numbers do not.
    d.find_element(By.CSS_SELECTOR, "a[hreflang=en]").click()
    WebDriverWait(d, 30).until(lambda d: "lang=en" in d.current_url)
    out["english_title"] = d.find_element(By.TAG_NAME, "h1").text
    out["english_tiles"] = {
        t.get_attribute("id")[5:]: tile(d, t.get_attribute("id")[5:])
        for t in d.find_elements(By.CSS_SELECTOR, "article.tile")
    }
    out["english_axe"] = axe(d)
    d.save_screenshot(shots + "/dashboard-en.png")
    d.find_element(By.CSS_SELECTOR, "a[hreflang=vi]").click()
    WebDriverWait(d, 30).until(lambda d: "lang=en" not in d.current_url)

    # A phone: the page fits its width (tables scroll inside their panels).
    d.set_window_size(390, 844)
    d.get(base + "/dashboard")
    out["phone_overflow_px"] = d.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    d.save_screenshot(shots + "/dashboard-phone.png")
    d.set_window_size(1400, 1800)
    d.get(base + "/dashboard")

    print(json.dumps(out, ensure_ascii=False), flush=True)
    out = {}

    # Live: the Rust side pushes events, then asks us to wait for the tile to change.
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        if cmd[0] == "wait-change":
            tile_id, old = cmd[1], cmd[2]
            # A reload would wipe this: the change must come without one.
            d.execute_script("window.__khoMarker = 42")
            deadline = time.time() + 30
            seen = old
            while time.time() < deadline:
                try:
                    seen = tile(d, tile_id)["rate"]
                except (StaleElementReferenceException, NoSuchElementException):
                    continue  # the panels were being swapped in: read again
                if seen != old:
                    break
                time.sleep(0.25)
            marker = d.execute_script("return window.__khoMarker || null")
            print(json.dumps({"rate": seen, "reloaded": marker != 42,
                              "console_errors": console_errors(d)}), flush=True)
        if cmd[0] == "sector":
            # A sector sees only the panels built from its own streams.
            d.delete_all_cookies()
            sign_in(d, services)
            print(json.dumps({
                "tiles": [t.get_attribute("id")[5:] for t in d.find_elements(By.CSS_SELECTOR, "article.tile")],
                "panels": [s.get_attribute("id") for s in d.find_elements(By.CSS_SELECTOR, "section.panel")],
                "console_errors": console_errors(d),
            }), flush=True)
finally:
    d.quit()
