"""Open the Snakemake HTML report in a headless Chromium and check what a reader sees.

    python tests/browser/check_report.py results/report.html --screenshots DIR    (make check-report)

Loads the report (a single-page React app) in Chromium through Selenium and chromedriver, at a
laptop-sized window (``--window``, default 1440x900), and navigates it as a reader does: the
menu's Statistics and About pages, then Results → each category → each experiment
(subcategory) → the eye button of every registered figure and the info button of every result
(which shows its caption). It fails (exit status 1, one line per problem) on

* a JavaScript error: a console error or an uncaught exception, on load or while navigating;
* a missing or broken figure: a registered image without an embedded ``data:image/…;base64``
  URI, one the menu cannot open, an ``<img>`` that does not decode (``naturalWidth`` 0), or a
  figure whose top is cut off: Snakemake's report centres a result in its pane, so the top of
  one taller than the window cannot be scrolled to (snakemake/snakemake#2782); the workflow's
  report stylesheet (workflow/report/report.css, ``--report-stylesheet``) fixes that;
* a caption that did not render: empty, or holding a reStructuredText error (docutils writes
  its "System Message" into the HTML);
* a missing category (``--categories``, default ``Tables Figures``).

Screenshots (``--screenshots DIR``): ``landing.png`` (the workflow description and the rule
graph), ``figure.png`` (the first figure as its eye button shows it), ``caption.png`` (that
figure's info pane with its caption), ``table.png`` (the first table's info pane) and, with
``--all``, ``<experiment>_<name>.png`` and ``<experiment>_<name>_caption.png`` for every
figure.

Needs ``selenium`` (the ``dev`` extra: ``pip install -e ".[dev]"``) and a Chromium with its
chromedriver (Debian: ``apt-get install chromium chromium-driver``); ``--chromium`` and
``--chromedriver`` (or ``$CHROMIUM``, ``$CHROMEDRIVER``) name others. Exit status 2: nothing to
check with. Nothing is fetched: the report embeds its scripts and figures, and Chromium's
background networking is off. tests/test_report_browser.py runs it on the tiny experiment's
report.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# A headless Chromium on a machine without network, GPU or user namespaces (containers, root):
# no sandbox, no GPU, and none of the background traffic (component updates, sync, QUIC) it
# would otherwise send into a closed network.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMEDRIVER_NAMES = ("chromedriver",)
DEFAULT_WINDOW = (1440, 900)
# How docutils marks a reStructuredText error in the HTML it writes: the text is kept and a
# "System Message" block (or an inline problematic span) is added.
RST_ERRORS = re.compile(r'class="system-message|System Message:|class="problematic"|'
                        r"Unknown interpreted text role|Undefined substitution")
# An image embedded in the report: data:image/png;charset=utf8;filename=…;base64,…
EMBEDDED_IMAGE = re.compile(r"data:image/[^,]*;base64,.")
TIMEOUT_S = 60.0


class NoBrowser(RuntimeError):
    """No Chromium, chromedriver or selenium to check the report with."""


def find_executable(explicit: str | None, env: str, names: tuple[str, ...]) -> str | None:
    for candidate in (explicit, os.environ.get(env), *names):
        if candidate and (path := shutil.which(candidate)):
            return path
    return None


def browser_missing(chromium: str | None = None, chromedriver: str | None = None) -> str | None:
    """Why the report cannot be checked here (no selenium, Chromium or chromedriver), or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    if find_executable(chromium, "CHROMIUM", CHROMIUM_NAMES) is None:
        return "no Chromium found (Debian: apt-get install chromium chromium-driver; or set $CHROMIUM)"
    if find_executable(chromedriver, "CHROMEDRIVER", CHROMEDRIVER_NAMES) is None:
        return "no chromedriver found (Debian: apt-get install chromium-driver; or set $CHROMEDRIVER)"
    return None


@dataclass
class Outcome:
    """What the check found: problems (empty when the report passes) and what it did."""

    problems: list[str] = field(default_factory=list)
    screenshots: list[Path] = field(default_factory=list)
    figures_opened: list[str] = field(default_factory=list)
    captions_shown: int = 0
    browser: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


def start_browser(profile: Path, window: tuple[int, int], chromium: str | None = None,
                  chromedriver: str | None = None):
    if reason := browser_missing(chromium, chromedriver):
        raise NoBrowser(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = find_executable(chromium, "CHROMIUM", CHROMIUM_NAMES)
    for flag in (*CHROMIUM_FLAGS, f"--window-size={window[0]},{window[1]}", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # Console messages and uncaught exceptions, read back with driver.get_log("browser").
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The chromedriver named explicitly: Selenium Manager would otherwise try to download one.
    driver = webdriver.Chrome(options=options,
                              service=Service(find_executable(chromedriver, "CHROMEDRIVER", CHROMEDRIVER_NAMES)))
    # The page's viewport exactly (--window-size is the window, toolbars included).
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": window[0], "height": window[1], "deviceScaleFactor": 1, "mobile": False})
    return driver


def wait_for(condition: Callable[[], Any], what: str, timeout: float = TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)
    return value


def js_errors(driver, where: str) -> list[str]:
    """Console errors and uncaught exceptions since the last call (Chromium logs both as
    SEVERE; warnings, such as Tailwind's "should not be used in production", are not errors)."""
    return [f"JavaScript error ({where}): {entry['message']}"
            for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def xpath_literal(text: str) -> str:
    if "'" not in text:
        return f"'{text}'"
    return "concat('" + "', \"'\", '".join(text.split("'")) + "')"


def _click(driver, xpath: str, what: str) -> None:
    """Click the first element at ``xpath``, once it exists and takes the click: the navigation
    bar animates its width (Tailwind's transition-all), and while it does another element may
    receive the click, or React may replace the element."""
    from selenium.common.exceptions import ElementClickInterceptedException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def clicked() -> bool:
        elements = driver.find_elements(By.XPATH, xpath)
        if not elements:
            return False
        try:
            elements[0].click()
        except (ElementClickInterceptedException, StaleElementReferenceException):
            return False
        return True

    wait_for(clicked, what)


def click_menu_item(driver, text: str) -> None:
    """A link of the navigation bar's menu: General pages, categories, subcategories."""
    _click(driver, f"//nav//ul/li/a[normalize-space(.)={xpath_literal(text)}]", f"the menu item {text!r}")


def navbar_mode(driver) -> str:
    return driver.execute_script("return app.state.navbarMode;")


def back_to_menu(driver) -> None:
    """The breadcrumbs' "Results" (or, where absent, the home icon) back to the menu."""
    if navbar_mode(driver) != "menu":
        _click(driver, "(//nav//ol/li/a[normalize-space(.)='Results'] | (//nav//ol/li/a)[1])[last()]",
               "the breadcrumbs")
        wait_for(lambda: navbar_mode(driver) == "menu", "the menu")


def go_to(driver, category: str, subcategory: str, registered: dict) -> None:
    """From wherever the navigation bar is to the list of one subcategory's results, by the
    links a reader clicks: back to the menu, the category, the subcategory."""
    back_to_menu(driver)
    click_menu_item(driver, category)
    if len(registered[category]) > 1:  # a single subcategory opens with its category
        click_menu_item(driver, subcategory)
    wait_for(lambda: navbar_mode(driver) == "subcategory", f"{category} → {subcategory}")


def click_result_button(driver, path: str, button: str) -> None:
    """Click the eye (``"view"``) or info (``"info"``) button of ``path`` in the open list of
    results (the first and the last button of its row)."""
    row = f"//nav//tr[td[normalize-space(.)={xpath_literal(path)}]]"
    which = "1" if button == "view" else "last()"
    _click(driver, f"({row}//a[@type='button'])[{which}]", f"the {button} button of {path}")


def broken_images(driver) -> list[str]:
    """The <img> elements of the page that loaded but did not decode."""
    return driver.execute_script(
        "return Array.from(document.images).filter(i => i.complete && i.naturalWidth === 0)"
        ".map(i => (i.getAttribute('src') || '').slice(0, 60));")


# The image the content pane shows, once it is ``path``'s embedded image and has loaded: its
# natural and shown size, and how far its top lies above the pane's top when the pane is
# scrolled all the way up (> 0: that much of the figure cannot be seen).
_SHOWN_IMAGE = """
const img = Array.from(document.querySelectorAll('#app img')).find(i => !i.closest('nav'));
if (!img || img.getAttribute('src') !== results[arguments[0]].data_uri || !img.complete) return null;
const pane = img.closest('.overflow-auto') || document.scrollingElement;
pane.scrollTop = 0;
const cut = pane.getBoundingClientRect().top - img.getBoundingClientRect().top;
return {natural: [img.naturalWidth, img.naturalHeight], shown: [img.width, img.height], cut: Math.round(cut)};
"""


def shown_caption(driver) -> str | None:
    """The caption the info pane shows (Snakemake renders it into a ``prose`` list item)."""
    return driver.execute_script("const c = document.querySelector('nav li.prose'); return c && c.innerText.trim();")


class Checker:
    """One report in one browser: the steps of the check, each adding to ``outcome``."""

    def __init__(self, driver, screenshots: Path | None, outcome: Outcome) -> None:
        self.driver, self.screenshots, self.outcome = driver, screenshots, outcome

    def problem(self, text: str) -> None:
        self.outcome.problems.append(text)

    def errors(self, where: str) -> None:
        self.outcome.problems.extend(js_errors(self.driver, where))

    def save(self, name: str) -> None:
        if self.screenshots is not None:
            path = self.screenshots / name
            time.sleep(0.5)  # the navigation bar's width animates (Tailwind's transition-all)
            self.driver.save_screenshot(str(path))
            self.outcome.screenshots.append(path)

    def saved(self, name: str) -> bool:
        return any(path.name == name for path in self.outcome.screenshots)

    def landing_page(self, report: Path) -> None:
        driver = self.driver
        driver.get(report.as_uri())
        wait_for(lambda: driver.execute_script(
            "return typeof app !== 'undefined' && !!document.querySelector('nav ul li a')"
            " && !!document.querySelector('#app .prose');"), "the report to render")
        try:  # the rule graph: Vega draws an SVG or a canvas
            wait_for(lambda: driver.execute_script("return !!document.querySelector('#app .marks');"),
                     "the rule graph", 20)
        except TimeoutError as err:
            self.problem(f"landing page: {err}")
        self.errors("loading the report")
        if not driver.execute_script("return document.querySelector('#app .prose').innerText;").strip():
            self.problem("landing page: the workflow description (workflow/report/workflow.rst) is empty")
        if RST_ERRORS.search(driver.execute_script("return workflow_desc;")):
            self.problem("landing page: the workflow description holds a reStructuredText error")
        self.outcome.problems.extend(f"landing page: broken image {src}" for src in broken_images(driver))
        self.save("landing.png")

    def general_pages(self) -> None:
        for page in ("Statistics", "About"):
            back_to_menu(self.driver)
            click_menu_item(self.driver, page)
            time.sleep(0.5)  # Vega renders the statistics' plots asynchronously
            self.errors(f"opening {page}")

    def registered(self, categories: tuple[str, ...]) -> tuple[dict, dict]:
        """The report's results (path -> mime type, caption, data URI head) and categories
        (category -> subcategory -> paths), checked without the UI."""
        registered = self.driver.execute_script("return categories;")
        results = self.driver.execute_script(
            "return Object.fromEntries(Object.entries(results).map(([p, r]) => "
            "[p, {mime: r.mime_type, caption: r.caption || '', uri: (r.data_uri || '').slice(0, 300)}]));")
        for category in categories:
            if not registered.get(category):
                self.problem(f"category {category!r} missing from the report (it has {sorted(registered)})")
        for path, result in sorted(results.items()):
            if not result["caption"].strip():
                self.problem(f"{path}: no caption")
            elif RST_ERRORS.search(result["caption"]):
                self.problem(f"{path}: the caption holds a reStructuredText error")
            if result["mime"].startswith("image/") and not EMBEDDED_IMAGE.match(result["uri"]):
                self.problem(f"{path}: the figure is not embedded (data URI {result['uri'][:60]!r})")
        return registered, results

    def figure(self, path: str, where: str) -> bool:
        """Click the figure's eye button: the content pane must show it, decoded, top visible."""
        click_result_button(self.driver, path, "view")
        try:
            shown = wait_for(lambda: self.driver.execute_script(_SHOWN_IMAGE, path), f"{path} to show", 20)
        except TimeoutError as err:
            self.problem(f"{where}: the figure cannot be opened ({err})")
            return False
        self.outcome.problems.extend(f"{where}: broken image {src}" for src in broken_images(self.driver))
        self.errors(f"opening {where}")
        (width, height), (shown_w, shown_h) = shown["natural"], shown["shown"]
        if not width or not height:
            self.problem(f"{where}: broken figure (naturalWidth {width}, naturalHeight {height})")
            return False
        if shown["cut"] > 1:
            self.problem(
                f"{where}: the top {shown['cut']} px of the figure ({width}×{height} px, shown {shown_w}×{shown_h}) "
                f"are cut off and cannot be scrolled to in a {self.driver.execute_script('return innerHeight;')}-px-high "
                "window (snakemake/snakemake#2782): build the report with --report-stylesheet "
                "workflow/report/report.css, or make the figure less tall")
        self.outcome.figures_opened.append(path)
        return True

    def caption(self, path: str, where: str) -> bool:
        """Click the result's info button: the pane must show its caption, rendered."""
        click_result_button(self.driver, path, "info")
        try:
            shown = wait_for(lambda: navbar_mode(self.driver) == "resultinfo" and shown_caption(self.driver),
                             f"the caption of {path}", 10)
        except TimeoutError as err:
            self.problem(f"{where}: the caption is not shown ({err})")
            return False
        self.outcome.captions_shown += 1
        if RST_ERRORS.search(shown):
            self.problem(f"{where}: the caption shows a reStructuredText error")
        self.errors(f"the caption of {where}")
        return True


def check_report(report: Path, screenshots: Path | None = None, *, categories: tuple[str, ...] = ("Tables", "Figures"),
                 every_figure: bool = False, window: tuple[int, int] = DEFAULT_WINDOW,
                 chromium: str | None = None, chromedriver: str | None = None) -> Outcome:
    """Open ``report`` in a headless Chromium and check it (see the module docstring)."""
    outcome = Outcome()
    if screenshots is not None:
        screenshots.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="check-report-") as profile:
        driver = start_browser(Path(profile), window, chromium, chromedriver)
        try:
            outcome.browser = f"{driver.capabilities['browserName']} {driver.capabilities['browserVersion']}"
            _check(Checker(driver, screenshots, outcome), report.resolve(), categories, every_figure)
        finally:
            driver.quit()
    return outcome


def _check(checker: Checker, report: Path, categories: tuple[str, ...], every_figure: bool) -> None:
    checker.landing_page(report)
    registered, results = checker.registered(categories)
    for category in sorted(registered):
        for subcategory in sorted(registered[category]):
            for path in sorted(registered[category][subcategory]):
                where = f"{category} → {subcategory} → {path}"
                name = f"{subcategory}_{Path(path).stem}"
                go_to(checker.driver, category, subcategory, registered)
                if not results[path]["mime"].startswith("image/"):
                    # A table: its eye button downloads the CSV; its info pane shows the caption.
                    if checker.caption(path, where) and not checker.saved("table.png"):
                        checker.save("table.png")
                    continue
                if checker.figure(path, where):
                    if not checker.saved("figure.png"):
                        checker.save("figure.png")
                    if every_figure:
                        checker.save(f"{name}.png")
                if checker.caption(path, where):
                    if not checker.saved("caption.png"):
                        checker.save("caption.png")
                    if every_figure:
                        checker.save(f"{name}_caption.png")
    figures = {path for path, result in results.items() if result["mime"].startswith("image/")}
    for path in sorted(figures - set(checker.outcome.figures_opened)):
        checker.problem(f"{path}: a registered figure that could not be opened from the report's menu")
    checker.general_pages()
    checker.errors("navigating the report")


def _window(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path, help="the HTML report (snakemake --report FILE)")
    parser.add_argument("--screenshots", type=Path, metavar="DIR",
                        help="save landing.png, figure.png, caption.png and table.png here")
    parser.add_argument("--all", action="store_true", help="also a screenshot of every figure and its caption")
    parser.add_argument("--window", type=_window, default=DEFAULT_WINDOW, metavar="WxH",
                        help="the browser's viewport in CSS pixels (default: %(default)s)")
    parser.add_argument("--categories", nargs="+", default=["Tables", "Figures"], metavar="NAME",
                        help="categories the report must have (default: Tables Figures)")
    parser.add_argument("--chromium", help="the Chromium binary (default: $CHROMIUM, else chromium on PATH)")
    parser.add_argument("--chromedriver", help="its chromedriver (default: $CHROMEDRIVER, else on PATH)")
    args = parser.parse_args(argv)
    if not args.report.is_file():
        parser.error(f"no report at {args.report}")
    try:
        outcome = check_report(args.report, args.screenshots, categories=tuple(args.categories),
                               every_figure=args.all, window=args.window,
                               chromium=args.chromium, chromedriver=args.chromedriver)
    except NoBrowser as err:
        print(f"check_report: cannot check {args.report}: {err}", file=sys.stderr)
        return 2
    print(f"{args.report}: {outcome.browser}, {args.window[0]}x{args.window[1]}: "
          f"{len(outcome.figures_opened)} figures opened, {outcome.captions_shown} captions shown")
    for path in outcome.screenshots:
        print(f"  screenshot {path}")
    for problem in outcome.problems:
        print(f"FAIL {problem}", file=sys.stderr)
    print("report OK" if outcome.ok else f"{len(outcome.problems)} problem(s)", file=sys.stderr)
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
