"""`helm package` ships the chart without its helm-unittest suites (tests/)
and chart-testing values (ci/), but with the helm test pod
(templates/tests/), the in-pod scripts and the web server configs (files/)."""

from __future__ import annotations

import tarfile
from pathlib import Path

from chartlib import CHART, run_helm


def test_package_contents(helm: str, tmp_path: Path) -> None:
    result = run_helm(helm, "package", str(CHART), "--destination", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (archive,) = tmp_path.glob("matomo-*.tgz")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert "matomo/templates/tests/test-matomo.yaml" in names
    assert "matomo/files/matomo-init.sh" in names
    assert "matomo/files/apache/000-default.conf" in names
    assert "matomo/files/nginx/default.conf" in names
    assert "matomo/values.schema.json" in names
    assert not [n for n in names if n.startswith(("matomo/tests/", "matomo/ci/"))], sorted(names)
