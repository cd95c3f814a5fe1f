"""Passwords as users write them (tests/harness/passwords.py), given to the chart
as values (`database.password`, `matomo.superuser.password`), on genuine Matomo
5.1.2 in the pods the chart renders: the hook installs with them (database login
as a user MariaDB created with the password; the installer's superuser form),
a serving pod stores hits (its config.ini.php holds the database password), and
Matomo's API logs the superuser in with the password (the superuser's, when
it has whitespace at an end, is another one: Matomo's API trims every
parameter, so the chart refuses such a superuser password). Those the chart
refuses are refused when it renders (tests/chart/test_passwords.py)."""

from __future__ import annotations

import pytest
import yaml
from harness.passwords import ACCEPTED, superuser_accepted
from genuinelib import Release, api, track


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_install_login_and_tracking_with_the_password(release: Release, name: str) -> None:
    password = ACCEPTED[name]
    # whitespace at an end: refused for the superuser (Matomo's API trims it), taken for the database
    superuser = password if superuser_accepted(password) else "superuser-pw"
    user = release.suite.db.new_user(release.database, password)
    values = release.suite.workdir / f"passwords-{release.namespace}.yaml"
    values.write_text(yaml.safe_dump({
        "database": {"username": user, "existingSecret": "", "password": password},
        "matomo": {"superuser": {"existingSecret": "", "password": superuser}},
    }, allow_unicode=True), encoding="utf-8")
    release.helm_apply("5.1.2", "-f", str(values))

    hook = release.run_hook()
    assert hook.exit_code == 0, hook.explain()
    assert release.option("version_core") == "5.1.2"
    if len(password) >= 8:
        for container in hook.pod.containers:
            assert password not in hook.pod.logs(container), f"the password is in the {container} log"

    pod = release.serving_pod()
    assert track(pod, 2) == [204, 204]
    assert release.count("log_link_visit_action") == 2, pod.logs("matomo")[-3000:]

    status, body = api(pod, "UsersManager.createAppSpecificTokenAuth", userLogin="admin",
                       passwordConfirmation=superuser, description="password-table")
    assert status == 200 and isinstance(body, dict) and "value" in body, f"API login failed: {status} {body}"
    status, body = api(pod, "API.getMatomoVersion", body["value"])
    assert status == 200 and body == {"value": "5.1.2"}, body
