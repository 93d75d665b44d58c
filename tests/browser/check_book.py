"""Browser test of the built book: every page of ``_build/html`` as a reader sees it.

Run it after building the book (the default ``python -m pytest`` does not collect this file, whose
name does not match ``test_*.py``; pytest collects a file named on the command line)::

    jupyter-book build .
    python -m pytest tests/browser/check_book.py

The pages are served on 127.0.0.1 and opened in the system's headless Chromium (Debian packages
``chromium`` and ``chromium-driver``, driven by Selenium; nothing is downloaded at run time). Every
host name other than 127.0.0.1 is made unresolvable, and any request that leaves 127.0.0.1 fails the
test, so the book must work without a network: math included. For every page the test checks that

- the page opens and its browser console has no error;
- no request goes anywhere but the local server;
- every image loads (``naturalWidth > 0``) and has alt text that is not a file name;
- MathJax typeset every formula: each math element holds MathJax output, there is no MathJax error
  node, and no raw TeX (``\\(``, ``\\[``, ``$$``, ``\\frac``, ...) is left in the visible prose;
- no cell output shows a traceback, a stderr block, an empty widget or a raw ``Claim(...)`` /
  ``Recording(...)`` repr, and no text shows an unresolved reference (``??``);
- every internal link resolves: the target file exists and so does its ``#anchor``;
- every table row has as many cells as its header, and the scorecard's verdict columns hold only
  verdicts (or "not run");
- the repository, issue, edit, download and launch links are well formed and point at the one
  ``repository.url`` of ``_config.yml``.

A missing build fails the test (it does not skip): a CI step or a reader who asks for the browser
test and gets a green run without any page checked would be misled.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import threading
import urllib.parse
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HTML = Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "html"))  # the built book (override: BOOK_HTML)
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
BUILD_FIRST = f"build the book first: jupyter-book build .  (no {HTML / 'index.html'})"

#: Raw TeX that MathJax should have replaced. Checked in visible text outside code blocks.
RAW_TEX = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$|\\(?:frac|lVert|rVert|tau|mathrm|text|sqrt|left|right|Delta)\b")
#: Reprs and error text that must not appear in a cell's output.
BAD_OUTPUT = re.compile(r"Traceback \(most recent call last\)|\bClaim\(|\bRecording\(|Error:|Warning:")
#: Verdicts the scorecard can print.
VERDICTS = {"reproduced", "not reproduced", "pass", "fail", "PASS", "FAIL", "✓", "✗", "not run"}


def pages() -> list[str]:
    if not (HTML / "index.html").exists():
        return ["<missing build>"]
    skip = {"search.html", "genindex.html"}
    return sorted(p.relative_to(HTML).as_posix() for p in HTML.rglob("*.html")
                  if p.name not in skip and "_static" not in p.parts and "_sources" not in p.parts)


def repository_url() -> str:
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    return config["repository"]["url"].rstrip("/")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no request log on stderr
        pass


@pytest.fixture(scope="module")
def server():
    if not (HTML / "index.html").exists():
        pytest.fail(BUILD_FIRST)
    handler = functools.partial(_Quiet, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for exe in (CHROMIUM, CHROMEDRIVER):
        if not Path(exe).exists():
            pytest.fail(f"{exe} not found: apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,2000", "--disable-extensions", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                # the network is off: no host name but 127.0.0.1 resolves
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


def _requests(driver) -> list[str]:
    import json

    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


#: Runs in the page: waits for MathJax, then reports what the checks need.
_INSPECT = r"""
const done = arguments[arguments.length - 1];
const ready = (window.MathJax && MathJax.startup && MathJax.startup.promise)
    ? MathJax.startup.promise : Promise.resolve();
ready.then(() => {
  const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
  const main = document.querySelector("main") || document.body;
  const prose = main.cloneNode(true);
  prose.querySelectorAll("pre, code, script, style, mjx-container, .linenos, .highlight, mjx-assistive-mml")
       .forEach((e) => e.remove());
  const maths = [...main.querySelectorAll(".math")];
  done({
    mathjax: !!window.MathJax,
    math: maths.length,
    untypeset: maths.filter((m) => !m.querySelector("mjx-container")).map((m) => m.textContent.slice(0, 80)),
    merror: main.querySelectorAll("mjx-merror").length,
    prose: prose.textContent,
    images: [...document.querySelectorAll("main img")].map((i) => ({
      src: i.getAttribute("src"), ok: i.complete && i.naturalWidth > 0, alt: i.getAttribute("alt") || ""})),
    outputs: [...main.querySelectorAll(".cell_output")].map((o) => o.innerText),
    stderr: main.querySelectorAll(".cell_output .stderr, .output.stderr").length,
    widgets: main.querySelectorAll("script[type='application/vnd.jupyter.widget-view+json']").length,
    tables: [...main.querySelectorAll("table")].map((t) => ({
      header: t.tHead ? t.tHead.rows[0].cells.length : null,
      rows: [...t.tBodies].flatMap((b) => [...b.rows].map((r) => [...r.cells].map((c) => c.innerText.trim()))),
      heads: t.tHead ? [...t.tHead.rows[0].cells].map((c) => c.innerText.trim().toLowerCase()) : []})),
    links: [...document.querySelectorAll("a[href]")].map((a) => a.getAttribute("href")),
    visibleText: document.body.innerText,
  });
});
"""


def _internal_target_ok(page: str, href: str) -> str | None:
    """None if an internal link resolves, else why not."""
    parsed = urllib.parse.urlparse(href)
    if parsed.scheme or href.startswith(("mailto:", "javascript:", "//")):
        return None
    path = urllib.parse.unquote(parsed.path)
    target = (HTML / page).parent / path if path else HTML / page
    target = target.resolve()
    if target.is_dir():
        target = target / "index.html"
    if not target.exists():
        return f"{href}: no file {target}"
    if parsed.fragment and target.suffix == ".html":
        html = target.read_text(encoding="utf-8", errors="replace")
        frag = re.escape(urllib.parse.unquote(parsed.fragment))
        if not re.search(rf'\bid=["\']{frag}["\']', html):
            return f"{href}: no #{parsed.fragment} in {target.name}"
    return None


@pytest.mark.parametrize("page", pages())
def test_page(page, server, browser):
    if page == "<missing build>":
        pytest.fail(BUILD_FIRST)
    browser.get_log("browser")  # drop what earlier pages left
    browser.get_log("performance")
    browser.get(f"{server}/{page}")
    info = browser.execute_async_script(_INSPECT)
    # index.html redirects to the root page: resolve links against where the browser ended up
    landed = urllib.parse.unquote(urllib.parse.urlparse(browser.current_url).path).lstrip("/") or page
    problems: list[str] = []

    console = [e["message"] for e in browser.get_log("browser")
               if e["level"] == "SEVERE" and "/favicon.ico" not in e["message"]]  # the browser asks for it
    problems += [f"console error: {m}" for m in console]
    external = [u for u in _requests(browser)
                if not u.startswith((server, "data:", "blob:", "about:", "chrome"))]
    problems += [f"external request: {u}" for u in sorted(set(external))]

    for img in info["images"]:
        if not img["ok"]:
            problems.append(f"image does not load: {img['src']}")
        alt = img["alt"].strip()
        if not alt or re.fullmatch(r"[0-9a-f]{16,}(\.\w+)?|.*\.(png|svg|jpg)", alt):
            problems.append(f"image without alt text: {img['src']} (alt={alt!r})")

    if info["math"] and not info["mathjax"]:
        problems.append(f"{info['math']} math elements but MathJax is not loaded")
    problems += [f"math not typeset: {m!r}" for m in info["untypeset"]]
    if info["merror"]:
        problems.append(f"{info['merror']} MathJax error nodes")
    for match in list(RAW_TEX.finditer(info["prose"]))[:5]:  # the first few are enough to find them
        context = info["prose"][max(0, match.start() - 40):match.end() + 40].replace("\n", " ")
        problems.append(f"raw TeX in the text: ...{context}...")

    for out in info["outputs"]:
        if BAD_OUTPUT.search(out):
            problems.append(f"bad cell output: {out[:200]!r}")
    if info["stderr"]:
        problems.append(f"{info['stderr']} stderr blocks in outputs")
    if info["widgets"]:
        problems.append(f"{info['widgets']} widget outputs (empty without a kernel)")
    if "??" in info["visibleText"]:
        problems.append("unresolved reference '??' in the page")
    if "undefined label" in info["visibleText"].lower():
        problems.append("'undefined label' in the page")

    for table in info["tables"]:
        width = table["header"]
        for row in table["rows"]:
            if width is not None and len(row) != width:
                problems.append(f"table row with {len(row)} cells under {width} headers: {row}")
        for col, head in enumerate(table["heads"]):  # "verdict", "quick-profile verdict", ...
            if head == "verdict" or head.endswith("-profile verdict"):
                bad = [r[col] for r in table["rows"] if len(r) > col and r[col] not in VERDICTS]
                if bad:
                    problems.append(f"scorecard column {head!r} holds {bad[:5]}")

    for href in set(info["links"]):
        why = _internal_target_ok(landed, href)
        if why:
            problems.append(f"broken internal link: {why}")

    assert not problems, f"{page}:\n  " + "\n  ".join(problems)


def test_reader_features(server):
    """Every chapter page offers the repository, issue, edit, source and .ipynb downloads, launch."""
    if not (HTML / "index.html").exists():
        pytest.fail(BUILD_FIRST)
    repo = repository_url()
    chapters = sorted(p for p in HTML.glob("book/0*.html"))
    assert chapters, "no chapter page in the build"
    for page in chapters:
        html = page.read_text(encoding="utf-8")
        hrefs = set(re.findall(r'href="([^"]+)"', html))
        stem = page.stem
        want = {
            "repository": repo,
            "issue": f"{repo}/issues/new",
            "edit": f"{repo}/edit/",
            "source download": f"_sources/book/{stem}.md",
            "notebook download": f"_sources/book/{stem}.ipynb",
        }
        for what, prefix in want.items():
            found = [h for h in hrefs if h.startswith(prefix) or prefix in h]
            assert found, f"{page.name}: no {what} link ({prefix})"
        for h in hrefs:
            if "mybinder.org" in h or "colab.research.google.com" in h:
                assert repo.split("://", 1)[1].split("/", 1)[1] in h, f"{page.name}: launch link {h} not to {repo}"
        ipynb = HTML / "_sources" / "book" / f"{stem}.ipynb"
        assert ipynb.exists(), f"{ipynb} missing: the executed notebook download"
        assert '"outputs": [\n' in ipynb.read_text(encoding="utf-8") or "output_type" in ipynb.read_text(
            encoding="utf-8"), f"{ipynb.name} has no outputs: not the executed notebook"
