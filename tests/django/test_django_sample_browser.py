"""End to end: a staff user logs in and reads the cache dashboard in headless Chromium.

Skips, saying so, only when no Chromium / chromedriver is installed (Debian: chromium and
chromium-driver, which scripts/test.sh installs).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1200,900",
]


def _find(*names: str) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    chromium = _find("chromium", "chromium-browser", "google-chrome")
    driver_path = _find("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip(
            "no headless browser: needs chromium and chromedriver on PATH"
            " (Debian packages chromium and chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.django_db(transaction=True)
def test_staff_user_reads_the_dashboard(
    browser: Any, live_server: Any, django_user_model: Any
) -> None:
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    cache.clear()
    django_user_model.objects.create_user("staff", password="s3cret-pw", is_staff=True)
    # A page that reloads under a wait can make Chrome answer "Node with given id does not
    # belong to the document" (an unknown error, not a stale-element one): poll again on it.
    wait = WebDriverWait(browser, 30, ignored_exceptions=(WebDriverException,))

    # Some traffic first: the visit counter, and a click on the counter page.
    for _ in range(3):
        browser.get(live_server.url + "/")
    assert browser.find_element(By.ID, "visits").text == "3"
    browser.get(live_server.url + "/counter/")
    browser.find_element(By.ID, "click-red").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "red"), "1"))

    # The dashboard sends anonymous users to the login form.
    browser.get(live_server.url + "/dashboard/")
    wait.until(ec.presence_of_element_located((By.ID, "login-form")))
    browser.find_element(By.NAME, "username").send_keys("staff")
    browser.find_element(By.NAME, "password").send_keys("s3cret-pw")
    browser.find_element(By.ID, "login-submit").click()
    wait.until(ec.presence_of_element_located((By.ID, "hit-chart")))
    assert browser.current_url.endswith("/dashboard/")

    keys = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#keys li")]
    assert "demo:visits" in keys and "demo:clicks:red" in keys
    assert int(browser.find_element(By.ID, "key-count").text.replace(",", "")) >= 3
    assert browser.find_element(By.ID, "hit-rate").text.endswith("%")
    hits = int(browser.find_element(By.ID, "hits").text)
    assert hits > 0

    # The charts are drawn: the mutable log region and the hit bar have a real width.
    mutable = browser.find_element(By.CSS_SELECTOR, "#log-chart rect.region-mutable")
    assert float(mutable.get_attribute("width")) > 0
    assert mutable.size["width"] > 0
    assert (
        float(browser.find_element(By.CSS_SELECTOR, "#hit-chart rect.seg-a").get_attribute("width"))
        > 0
    )

    # The session that logged us in lives in the cache; reloading shows more hits.
    browser.refresh()
    wait.until(ec.presence_of_element_located((By.ID, "hit-chart")))
    assert int(browser.find_element(By.ID, "hits").text) > hits
