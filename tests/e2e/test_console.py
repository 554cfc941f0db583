"""The notification service's /console driven in real headless Chromium: a developer makes
a token, creates a task with a reminder a few seconds out, and watches both notifications
and the unread count arrive over the WebSocket; then completes the task and reads all."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

from tests.e2e.system import System

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1100,1000",
)


class ConsoleSystem(System):
    """`taskflow up` with the task API allowing the console's (random-port) origin."""

    def env(self) -> dict[str, str]:
        env = super().env()
        env["TASKFLOW_TASK_API_CORS_ORIGINS"] = json.dumps([self.url("notify")])
        return env


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    running = ConsoleSystem(tmp_path_factory.mktemp("console") / "data")
    try:
        running.start()
        yield running
        assert running.stop() == 0
    finally:
        running.kill_everything()
        running.keep_logs(ARTIFACTS / "console-e2e")


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[webdriver.Chrome]:
    for binary, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if shutil.which(binary) is None:
            pytest.fail(f"{binary} is missing: run scripts/system-deps as root (apt {package})")
    # Never let Selenium Manager look for (or download) a browser or driver.
    monkeypatch.setenv("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: WebDriver, timeout: float = 10) -> WebDriverWait[WebDriver]:
    """Polls with a deadline (WebDriverWait), never a fixed sleep."""
    return WebDriverWait(driver, timeout, poll_frequency=0.1)


def text(driver: WebDriver, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def inbox_kinds(driver: WebDriver) -> list[str]:
    items = driver.find_elements(By.CSS_SELECTOR, "#inbox li")
    return [str(li.get_attribute("data-kind")) for li in items]


def test_the_console_shows_tasks_notifications_and_the_unread_count_live(
    system: System, browser: webdriver.Chrome
) -> None:
    user = f"dev-{uuid.uuid4().hex[:8]}"
    browser.get(system.url("notify") + "/console")
    api_base = browser.find_element(By.ID, "api-base")
    api_base.clear()
    api_base.send_keys(system.url("task-api"))
    user_box = browser.find_element(By.ID, "user")
    user_box.clear()
    user_box.send_keys(user)

    browser.find_element(By.ID, "generate").click()
    wait(browser).until(lambda d: text(d, "ws-status") == "connected", "socket connected")
    token = browser.find_element(By.ID, "token").get_attribute("value")
    assert token and token.count(".") == 2, token
    wait(browser).until(lambda d: text(d, "unread") == "0", "first unread_count frame")

    browser.find_element(By.ID, "task-title").send_keys("water the plants")
    browser.find_element(By.ID, "task-remind").send_keys("3")
    browser.find_element(By.ID, "create").click()

    # The task list comes back from the task API (cross-origin, through CORS).
    wait(browser).until(
        lambda d: "water the plants" in text(d, "tasks"), "the task listed on the page"
    )
    wait(browser, 20).until(
        lambda d: inbox_kinds(d) == ["task.created"] and text(d, "unread") == "1",
        "task.created in the inbox with unread 1",
    )
    wait(browser, 30).until(
        lambda d: inbox_kinds(d) == ["task.reminder", "task.created"] and text(d, "unread") == "2",
        "task.reminder in the inbox with unread 2",
    )
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "console.png"))

    # Complete it from the page: the list shows it done and a third notification arrives.
    browser.find_element(By.CSS_SELECTOR, "#tasks li.open button.complete").click()
    wait(browser).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#tasks li.completed"), "task completed"
    )
    wait(browser, 20).until(
        lambda d: inbox_kinds(d)[0] == "task.completed" and text(d, "unread") == "3",
        "task.completed in the inbox with unread 3",
    )

    # Mark all read over the socket: the server's unread_count frame brings it to 0.
    browser.find_element(By.ID, "read-all").click()
    wait(browser).until(lambda d: text(d, "unread") == "0", "unread back to 0")
    assert not browser.find_elements(By.CSS_SELECTOR, "#inbox li.unread")
    console_log = browser.get_log("browser")  # type: ignore[no-untyped-call]
    problems = [e for e in console_log if e["level"] == "SEVERE"]
    assert problems == [], problems
