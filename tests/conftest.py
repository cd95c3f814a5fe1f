"""Fixtures shared by every suite under tests/ (implementations in tests/fixtures/)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixtures.controlplane import controlplane  # noqa: E402,F401  (session: etcd + apiserver + kcm + kwok)
from fixtures.mariadb import mariadb, mariadb_database  # noqa: E402,F401  (session: mariadbd on 127.0.0.1)
