"""The tracker Deployment (tracker.enabled) on genuine Matomo: a pod of
F-tracker, as the API server has its template after the hook rolled it,
stores the hits it gets (single and bulk), serves the tracker JavaScript,
and refuses the UI and the API; the hook restarted both Deployments; and
its init container's version check refuses a database newer than its code,
as the serving pods' does."""

from __future__ import annotations

import json
import secrets
import urllib.parse

import pytest

from genuinelib import BROWSER, F, HOST, Release, request, track
from harness.podrun import PodError, http_request

TRACKER = f"{F}-tracker"


def _deployment(release: Release, name: str) -> dict:
    return dict(release.suite.cp.get(f"/apis/apps/v1/namespaces/{release.namespace}/deployments/{name}"))


def test_a_tracker_pod_stores_hits_serves_matomo_js_and_refuses_the_ui(release: Release) -> None:
    release.helm_apply("5.1.2", "--set", "tracker.enabled=true")
    hook = release.run_hook()
    assert hook.exit_code == 0, hook.explain()
    rolled = {e["deployment"] for e in hook.events() if e.get("event") == "rollout_complete"}
    assert rolled == {F, TRACKER}, hook.explain()
    for name in (F, TRACKER):
        annotations = _deployment(release, name)["spec"]["template"]["metadata"].get("annotations", {})
        assert "kubectl.kubernetes.io/restartedAt" in annotations, f"the hook did not roll {name}"

    tpl = _deployment(release, TRACKER)["spec"]["template"]
    assert tpl["metadata"]["labels"]["app.kubernetes.io/component"] == "tracker"
    pod = release.pod("tracker", tpl["spec"])
    pod.start(120)
    pod.wait_ready("matomo", 120)  # readiness: /matomo.js, which the tracker serves

    # single hits, as a browser's tracker sends them
    assert track(pod, 3) == [204, 204, 204], pod.logs("matomo")[-2000:]
    assert release.count("log_link_visit_action") == 3, pod.logs("matomo")[-2000:]

    # a bulk request (POST of JSON), as the PHP/JS trackers' bulk mode sends it
    visitor = secrets.token_hex(8)
    hits = [
        "?" + urllib.parse.urlencode({"idsite": 1, "rec": 1, "_id": visitor, "url": f"http://site.example.org/bulk-{i}",
                                      "action_name": f"Bulk {i}", "rand": secrets.token_hex(4)})
        for i in range(2)
    ]
    status, _, body = http_request(pod.socket(8080), "POST", "/matomo.php",
                                   {"Host": HOST, "User-Agent": BROWSER, "Content-Type": "application/json"},
                                   json.dumps({"requests": hits}).encode())
    assert status == 200, body[:500]
    assert json.loads(body)["tracked"] == 2, body[:500]
    assert release.count("log_link_visit_action") == 5

    # the tracker JavaScript, static and through Matomo's js/ proxy
    status, headers, text = request(pod, "GET", "/matomo.js")
    assert status == 200 and "Matomo" in text[:2000] and len(text) > 10000, (status, text[:200])
    status, _, proxied = request(pod, "GET", "/js/")
    assert status == 200 and "Matomo" in proxied[:2000], (status, proxied[:200])

    # the UI, the API and other files: refused, nothing stored
    for path in ("/", "/index.php", "/index.php?module=API&method=API.getMatomoVersion&format=json",
                 "/index.php?module=Login", "/js/tracker.php", "/plugins/Morpheus/images/logo.png"):
        status, _, text = request(pod, "GET", path)
        assert status == 403, (path, status, text[:300])
        assert "5.1.2" not in text and "<title>Matomo" not in text, (path, text[:300])
    status, _, _ = request(pod, "POST", "/index.php", {"module": "API", "method": "API.getMatomoVersion", "format": "json"})
    assert status == 403
    assert release.count("log_link_visit_action") == 5

    pod.stop()

    # a database newer than the tracker's code (a rollback to an older image.tag): the
    # tracker pod's matomo-init refuses to start, so its rollout stops, as the serving pods' does
    release.sql("UPDATE {p}option SET option_value = '5.9.0' WHERE option_name = 'version_core'")
    with pytest.raises(PodError, match="init container matomo-init exited 1") as refused:
        fresh = release.pod("tracker", _deployment(release, TRACKER)["spec"]["template"]["spec"])
        fresh.start(120)
    assert "Matomo 5.9.0 (version_core) but this release runs Matomo 5.1.2" in str(refused.value)
