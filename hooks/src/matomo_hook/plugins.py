"""Plugins the database has that the code lacks.

A database from another installation may have plugins installed (Matomo
records a ``version_<plugin>`` option for each) that the image does not
ship: a Marketplace plugin, or one added by hand. Matomo then does not load
them; their data stays in the database but their reports, settings and
tracking do not work. The hook names them (a warning, ``plugins_missing``),
never fails on them and changes nothing.
"""

from __future__ import annotations

import logging

from . import logs, matomo_config
from .config import Settings
from .database import Connection


def warn_missing(settings: Settings, conn: Connection) -> list[str]:
    """Logs ``plugins_missing`` naming the database's plugins that the code lacks
    (matomo_config.code_plugin_names); returns them. Nothing when the code's plugins
    are unknown (a code folder without Matomo's plugins is not a release)."""
    present = matomo_config.code_plugin_names(settings)
    if present is None:
        return []
    installed = conn.installed_plugins()
    missing = [p for p in installed if p not in present]
    if missing:
        logs.event(
            "plugins_missing", logging.WARNING, step="plugins", plugins=missing,
            hint=f"the database has plugins this image lacks: {', '.join(missing)}. Matomo "
            "will not load them (their data stays; their reports, settings and tracking do "
            "not work). To keep them, build an image FROM matomo:<version> with each under "
            "/usr/src/matomo/plugins/<Name> (image.repository, image.tag) and activate them "
            "in matomo.config.Plugins.Plugins (README.md, 'Plugins and the tracker'); "
            "otherwise nothing to do",
        )  # fmt: skip
    return missing
