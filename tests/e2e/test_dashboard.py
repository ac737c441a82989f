"""The dashboard in a real browser: Debian's chromium, driven by Playwright.

One server, one service (``demo``) and one endpoint (``shop``: blue and green) serve the
whole module.  Screenshots of each page at 1280 and 390 px wide go to
``test-artifacts/dashboard/`` (git-ignored), to be looked at.
"""

from __future__ import annotations

import http.server
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelport import AksEndpoint, InferenceConfig, Model, Webservice, Workspace
from modelport.errors import ModelportError
from tests.conftest import ServerProcess, wait_for
from tests.e2e.test_data_plane import Load
from tests.e2e.test_endpoints import HEADER, script, version_config
from tests.e2e.test_services import fixed

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
# Without these Debian's chromium waits on the network it may not reach.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
WIDTHS = (1280, 390)
TIMEOUT_MS = 30_000

PRINTING = """
    import json

    def init():
        print("init printed this")

    def run(raw):
        body = json.loads(raw)
        print("scoring", body.get("n"))
        if body.get("fail"):
            raise ValueError("failed on purpose")
        return {"n": body.get("n"), "y": [x * 10 for x in body.get("x", [])]}
"""


# -- fixtures: one server, a service and an endpoint for the module -----------------------
@pytest.fixture(scope="module")
def dash_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("dashboard") / "home")
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def dash_ws(dash_server: ServerProcess) -> Iterator[Workspace]:
    with Workspace.from_config(dash_server.home) as workspace:
        yield workspace


@pytest.fixture(scope="module")
def deployed(
    dash_ws: Workspace, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Webservice, AksEndpoint]:
    folder = tmp_path_factory.mktemp("model")
    (folder / "w.json").write_text('{"scale": 10}')
    model = Model.register(dash_ws, folder, "scaler", tags={"stage": "dev"})
    source = tmp_path_factory.mktemp("printing")
    (source / "score.py").write_text(textwrap.dedent(PRINTING))
    config = InferenceConfig(entry_script="score.py", source_directory=source)
    service = Model.deploy(dash_ws, "demo", [model], config, fixed(1))
    src = tmp_path_factory.mktemp("endpoint")
    endpoint = Model.deploy(dash_ws, "shop", [model], script(src, "blue"), version_config("blue"))
    assert isinstance(endpoint, AksEndpoint)
    service.wait_for_deployment()
    endpoint.wait_for_deployment()
    endpoint.create_version(
        "green",
        models=[model],
        inference_config=script(src, "green"),
        num_replicas=1,
        traffic_percentile=0,
    )
    endpoint.wait_for_deployment()
    assert service.state == "Healthy"
    assert endpoint.state == "Healthy"
    return service, endpoint


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():  # a test that cannot run is a failure, never a skip
        pytest.fail("Debian's chromium is not installed (apt-get install chromium)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def admin(chromium: Any, dash_server: ServerProcess) -> Iterator[Any]:
    """A signed-in admin's page."""
    context = chromium.new_context(viewport={"width": WIDTHS[0], "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    sign_in(page, dash_server.url, dash_server.token)
    try:
        yield page
    finally:
        context.close()


def sign_in(page: Any, url: str, token: str) -> None:
    page.goto(f"{url}/")  # the management address leads a browser to the dashboard
    assert page.url.endswith("/dashboard/signin")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/dashboard/")


def shoot(page: Any, name: str) -> None:
    """The page at each width, whole; the view is put back to the first width."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})


def expect(locator: Any) -> Any:
    return playwright.expect(locator)


def admin_get(server: ServerProcess, path: str) -> Any:
    headers = {"Authorization": f"Bearer {server.token}"}
    response = httpx.get(f"{server.url}{path}", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def score(uri: str, key: str | None, body: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(uri, json=body, headers=headers, timeout=30)


# -- the tests ------------------------------------------------------------------------------
def test_signed_in_admin_sees_the_healthy_service_and_every_page(
    admin: Any, dash_server: ServerProcess, deployed: tuple[Webservice, AksEndpoint]
) -> None:
    service, _ = deployed
    row = admin.locator("table.services tr[data-name=demo]")
    expect(row.locator(".state")).to_have_text("Healthy")
    expect(row).to_contain_text("1/1")
    expect(row.locator("code")).to_have_text(service.scoring_uri)
    expect(admin.locator("table.endpoints tr[data-name=shop] .state")).to_have_text("Healthy")
    shoot(admin, "overview")
    admin.click("text=Models")
    expect(admin.locator("table.models tr[data-model='scaler:1']")).to_contain_text("stage=dev")
    expect(admin.locator("table.models tr[data-model='scaler:1']")).to_contain_text("demo")
    shoot(admin, "models")
    admin.goto(f"{dash_server.url}/dashboard/services/demo")
    expect(admin.locator("h1 .state")).to_have_text("Healthy")
    # Try it: the answer, its status and time, and the curl line (without the key).
    admin.fill("#try-body", '{"n": 7, "x": [1, 2]}')
    admin.click(".tryit button[type=submit]")
    expect(admin.locator(".try-status")).to_have_text("200")
    expect(admin.locator(".try-answer")).to_contain_text('"y": [')
    expect(admin.locator(".try-result .curl")).to_contain_text(service.scoring_uri)
    assert service.get_keys()[0] not in admin.content()
    shoot(admin, "service")


def test_try_it_scores_a_token_auth_service_with_a_token_it_mints(
    admin: Any,
    dash_server: ServerProcess,
    dash_ws: Workspace,
    deployed: tuple[Webservice, AksEndpoint],
    tmp_path: Path,
) -> None:
    (tmp_path / "score.py").write_text(textwrap.dedent(PRINTING))
    config = InferenceConfig(entry_script="score.py", source_directory=tmp_path)
    model = Model(dash_ws, "scaler")
    tokened = fixed(1, auth_enabled=False, token_auth_enabled=True)
    service = Model.deploy(dash_ws, "tokened", [model], config, tokened)
    service.wait_for_deployment()
    assert score(service.scoring_uri, None, {"n": 1}).status_code == 401
    admin.goto(f"{dash_server.url}/dashboard/services/tokened")
    admin.fill("#try-body", '{"n": 8, "x": [3]}')
    admin.click(".tryit button[type=submit]")
    expect(admin.locator(".try-status")).to_have_text("200")
    expect(admin.locator(".try-answer")).to_contain_text('"y": [')
    service.delete()


def test_the_keys_are_reachable_by_keyboard_alone(
    admin: Any, dash_server: ServerProcess, deployed: tuple[Webservice, AksEndpoint]
) -> None:
    service, _ = deployed
    admin.goto(f"{dash_server.url}/dashboard/services/demo")
    for _ in range(60):  # Tab through the page's controls, in order, to the keys button
        admin.keyboard.press("Tab")
        if admin.evaluate("document.activeElement.textContent.trim()") == "Show keys":
            break
    else:
        pytest.fail("Tab never reached the Show keys button")
    admin.keyboard.press("Enter")
    shown = admin.locator("code.key[data-key=primary]")
    expect(shown).to_have_text(service.get_keys()[0])


def test_a_failed_service_shows_its_init_traceback_first(
    admin: Any,
    dash_server: ServerProcess,
    dash_ws: Workspace,
    deployed: tuple[Webservice, AksEndpoint],
    tmp_path: Path,
) -> None:
    (tmp_path / "score.py").write_text(
        "def init():\n    raise RuntimeError('init exploded on purpose')\n\n"
        "def run(raw):\n    return raw\n"
    )
    config = InferenceConfig(entry_script="score.py", source_directory=tmp_path)
    broken = Model.deploy(dash_ws, "broken", [Model(dash_ws, "scaler")], config, fixed(1))
    with pytest.raises(ModelportError, match="current service state: Failed"):
        broken.wait_for_deployment(timeout_sec=60)
    admin.reload()
    row = admin.locator("table.services tr[data-name=broken]")
    expect(row.locator(".state")).to_have_text("Failed")
    expect(row.locator(".reason")).to_contain_text("init exploded on purpose")
    admin.goto(f"{dash_server.url}/dashboard/services/broken")
    first = admin.locator("main section").first
    expect(first.locator("pre.traceback")).to_contain_text("RuntimeError: init exploded on purpose")
    shoot(admin, "service-failed")
    broken.delete()


def test_a_split_changed_in_the_page_takes_effect_in_the_routers_counts(
    admin: Any, dash_server: ServerProcess, deployed: tuple[Webservice, AksEndpoint]
) -> None:
    _, endpoint = deployed
    admin.goto(f"{dash_server.url}/dashboard/endpoints/shop")
    # The API's rules, whole: 120 % is refused and nothing of it applied.
    admin.fill("input[name=traffic-blue]", "60")
    admin.fill("input[name=traffic-green]", "60")
    admin.click("form.split button[type=submit]")
    expect(admin.locator(".notice.error")).to_contain_text("add up to 120%")
    assert {v.name: v.traffic_percentile for v in endpoint.versions.values()} == {
        "blue": 0,
        "green": 0,
    }
    before = admin_get(dash_server, "/api/v1/services/shop.green/counters")
    key = endpoint.get_keys()[0]
    load = Load(endpoint.scoring_uri, key, clients=2)  # the change drops no request
    try:
        load.wait_more(10, "requests before the change")
        admin.fill("input[name=traffic-green]", "100")
        admin.click("form.split button[type=submit]")
        expect(admin.locator(".notice").first).to_contain_text("traffic of shop updated")
        load.wait_more(10, "requests after the change")
    finally:
        results = load.stop()
    assert set(results) == {200}
    expect(admin.locator("tr[data-version=green] .share")).to_have_text("100 %")
    shoot(admin, "endpoint")
    wait_for(lambda: _served(endpoint.scoring_uri, key, 5) == {"green": 5}, what="all to green")
    assert _served(endpoint.scoring_uri, key, 20) == {"green": 20}
    after = admin_get(dash_server, "/api/v1/services/shop.green/counters")
    grown = after["counters"]["requests"]["2xx"] - before["counters"]["requests"]["2xx"]
    assert grown >= 25  # the router counted them on green


def _served(uri: str, key: str, count: int) -> Counter[str]:
    seen: Counter[str] = Counter()
    for i in range(count):
        response = score(uri, key, {"x": [i]})
        assert response.status_code == 200, response.text
        seen[response.headers[HEADER]] += 1
    return seen


def test_a_promotion_shows_its_progress_and_rolls_back_from_the_page(
    admin: Any, dash_server: ServerProcess, deployed: tuple[Webservice, AksEndpoint]
) -> None:
    _, endpoint = deployed
    endpoint.update_version(version_name="green", traffic_percentile=0)
    admin.goto(f"{dash_server.url}/dashboard/endpoints/shop")
    progress = admin.locator("p.promotion")
    # Without traffic to judge it the promotion rolls itself back: the page shows it
    # by itself, without a reload.
    _promote(admin, "20,30", "3")
    expect(progress).to_contain_text("green against blue: Running, step 1 of 2 (20 %)")
    expect(progress).to_contain_text("RolledBack", timeout=TIMEOUT_MS)
    expect(progress).to_contain_text("too little traffic to judge")
    # Rolled back by hand.
    admin.reload()
    _promote(admin, "20,30", "600")
    expect(progress).to_contain_text("Running, step 1 of 2 (20 %)")
    expect(admin.locator("tr[data-version=green] .share")).to_have_text("20 %")
    shoot(admin, "endpoint-promoting")
    admin.once("dialog", lambda dialog: dialog.accept())
    admin.click("text=Roll back")
    expect(progress).to_contain_text("Cancelled")
    expect(admin.locator("tr[data-version=green] .share")).to_have_text("0 %")
    assert _split(dash_server)["green"] == 0


def _promote(page: Any, steps: str, seconds: str) -> None:
    page.select_option("form.promote select[name=version]", "green")
    page.fill("form.promote input[name=steps]", steps)
    page.fill("form.promote input[name=stepSeconds]", seconds)
    page.click("form.promote button[type=submit]")


def test_a_regenerated_key_is_shown_and_the_old_one_refused(
    admin: Any, dash_server: ServerProcess, deployed: tuple[Webservice, AksEndpoint]
) -> None:
    service, _ = deployed
    admin.goto(f"{dash_server.url}/dashboard/services/demo")
    admin.click("text=Show keys")
    old = admin.locator("code.key[data-key=primary]").inner_text()
    assert old == service.get_keys()[0]
    admin.once("dialog", lambda dialog: dialog.accept())
    admin.click("text=Regenerate primary")
    expect(admin.locator(".notice").first).to_contain_text("Primary key of demo regenerated")
    admin.click("text=Show keys")
    new = admin.locator("code.key[data-key=primary]").inner_text()
    assert new != old
    wait_for(
        lambda: score(service.scoring_uri, old, {"n": 1}).status_code == 401,
        what="the router to refuse the old key",
    )
    assert score(service.scoring_uri, new, {"n": 1}).status_code == 200


def test_logs_follow_live_and_filter(
    admin: Any, dash_server: ServerProcess, deployed: tuple[Webservice, AksEndpoint]
) -> None:
    service, _ = deployed
    key = service.get_keys()[0]
    admin.goto(f"{dash_server.url}/dashboard/services/demo/logs")
    replica_logs = admin.locator("section.logs").first
    requests = admin.locator("section.requests")
    expect(replica_logs.locator(".log-lines")).to_contain_text("init printed this")
    assert score(service.scoring_uri, key, {"n": 4242}).status_code == 200
    assert score(service.scoring_uri, key, {"n": 4343, "fail": True}).status_code == 502
    expect(replica_logs.locator(".log-lines")).to_contain_text("scoring 4242")
    expect(requests.locator(".log-lines")).to_contain_text('"status": 502')
    replica_logs.locator(".log-text").fill("scoring 4242")
    expect(replica_logs.locator(".log-lines div:visible")).to_have_count(1)
    requests.locator(".log-status").select_option("5xx")
    expect(requests.locator(".log-lines")).to_contain_text('"status": 502')
    expect(requests.locator(".log-lines")).not_to_contain_text('"status": 200')
    shoot(admin, "logs")
    # An endpoint version's replica logs are read again every few seconds.
    admin.goto(f"{dash_server.url}/dashboard/endpoints/shop/versions/blue/logs")
    expect(admin.locator("section.logs .log-lines").first).to_contain_text(
        "calling init() of src-blue/score.py"
    )
    expect(admin.locator("section.logs .log-state").first).to_contain_text("read at")


def test_the_live_chart_moves_under_load(
    admin: Any, dash_server: ServerProcess, deployed: tuple[Webservice, AksEndpoint]
) -> None:
    service, _ = deployed
    admin.goto(f"{dash_server.url}/dashboard/services/demo")
    live = admin.locator("section.live")
    expect(live.locator(".live-replicas")).to_have_text("1/1")
    load = Load(service.scoring_uri, service.get_keys()[0], clients=2)
    try:
        admin.wait_for_function(
            "() => parseFloat(document.querySelector('.live-rps').textContent) > 1"
            " && parseInt(document.querySelector('.live-samples').textContent) >= 3",
            timeout=TIMEOUT_MS,
        )
        expect(live.locator(".live-p50")).not_to_have_text("-")
        shoot(admin, "live")
    finally:
        results = load.stop()
    assert results and set(results) == {200}


def test_signed_out_and_viewer_sessions_change_nothing(
    chromium: Any, dash_server: ServerProcess, deployed: tuple[Webservice, AksEndpoint]
) -> None:
    service, _ = deployed
    keys = service.get_keys()
    split_before = _split(dash_server)
    url = dash_server.url
    # Signed out: every page leads to sign-in, every change and feed is refused.
    assert httpx.get(f"{url}/dashboard/services/demo").headers["location"] == "/dashboard/signin"
    refused = httpx.post(f"{url}/dashboard/services/demo/regenerate", data={"keyType": "Primary"})
    assert refused.status_code == 401
    assert httpx.get(f"{url}/dashboard/feeds/services/demo/keys").status_code == 401
    assert httpx.get(f"{url}/dashboard/feeds/counters/demo").status_code == 401
    # A viewer: sees the service, not its keys, and cannot change the split.
    viewer_token = subprocess.run(
        [sys.executable, "-m", "modelport", "dashboard", "viewer-token"],
        env=dash_server.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    context = chromium.new_context(viewport={"width": WIDTHS[0], "height": 900})
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        sign_in(page, url, viewer_token)
        expect(page.locator(".role")).to_have_text("viewer")
        expect(page.locator("table.services tr[data-name=demo] .state")).to_have_text("Healthy")
        page.goto(f"{url}/dashboard/endpoints/shop")
        expect(page.locator("input[name=traffic-green]")).to_be_disabled()
        expect(page.locator("form.split button[type=submit]")).to_have_count(0)
        expect(page.locator("text=Show keys")).to_have_count(0)
        shoot(page, "endpoint-viewer")
        # Server side, not hidden buttons: the viewer's own session and CSRF token.
        csrf = page.locator("input[name=csrf]").first.get_attribute("value")
        cookies = {c["name"]: c["value"] for c in context.cookies()}
        with httpx.Client(base_url=url, cookies=cookies) as client:
            split = client.post(
                "/dashboard/endpoints/shop/split",
                data={"csrf": csrf, "traffic-blue": "100", "traffic-green": "0"},
            )
            assert split.status_code == 403
            assert "viewer session changes nothing" in split.text
            assert client.get("/dashboard/feeds/services/demo/keys").status_code == 403
            assert client.get("/dashboard/feeds/counters/demo").status_code == 200
        assert keys[0] not in page.content()
        # Signing out ends the session on the server: its cookie opens nothing more.
        page.click("text=Sign out")
        page.wait_for_url(f"{url}/dashboard/signin")
        with httpx.Client(base_url=url, cookies=cookies) as client:
            assert client.get("/dashboard/feeds/counters/demo").status_code == 401
    finally:
        context.close()
    assert service.get_keys() == keys
    assert _split(dash_server) == split_before


def _split(server: ServerProcess) -> dict[str, int]:
    versions = admin_get(server, "/api/v1/endpoints/shop")["versions"]
    return {name: v["trafficPercentile"] for name, v in versions.items()}


class _Attacker:
    """A page of another origin that posts a form to the dashboard as soon as it loads."""

    def __init__(self, target: str) -> None:
        page = (
            f'<form method="post" action="{target}"><input name="keyType" value="Primary">'
            "</form><script>document.forms[0].submit()</script>"
        ).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/html")
                self.send_header("content-length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_form_posted_from_another_origin_is_refused(
    admin: Any, dash_server: ServerProcess, deployed: tuple[Webservice, AksEndpoint], host: str
) -> None:
    """127.0.0.1 on another port is the same site (the cookie goes along: the origin
    and CSRF checks refuse it); localhost is another site (SameSite=Strict keeps the
    cookie back: not signed in)."""
    service, _ = deployed
    keys = service.get_keys()
    attacker = _Attacker(f"{dash_server.url}/dashboard/services/demo/regenerate")
    try:
        admin.goto(f"http://{host}:{attacker.port}/")
        admin.wait_for_url(f"{dash_server.url}/dashboard/services/demo/regenerate")
        expect(admin.locator(".notice.error")).to_be_visible()
        wanted = "dashboard's own pages" if host == "127.0.0.1" else "sign in first"
        expect(admin.locator(".notice.error")).to_contain_text(wanted)
        shoot(admin, f"refused-{host}")
    finally:
        attacker.close()
    assert service.get_keys() == keys
