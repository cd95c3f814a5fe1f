"""Is the salt given to the hook the one this database was installed with?

Matomo hashes every API token with the salt (plugins/UsersManager/Model.php,
hashTokenAuth: ``hash('sha512', $token . $salt)``) and signs sessions and
cookies with it: a database run with another salt keeps its data, but every
token and every login stops working, and nothing in Matomo says why. The hook
checks it on an installed database before it writes anything, with the first
of these the database allows:

1. the chart's record of the salt in Matomo's option table
   (``MatomoChart.saltCheck``, autoload 0: an HMAC of a fixed text keyed with
   the salt, so it reveals nothing about it); every install the hook makes
   records it, and so does every run whose check passed;
2. a database without the record was made elsewhere (another installation, a
   dump). One API token of that installation, when given
   (``MATOMO_SALT_CHECK_TOKEN_FILE``), must hash with this salt to one of its
   ``user_token_auth`` rows;
3. else Matomo's own row for its anonymous user: its install stored the
   well-known token ``anonymous`` hashed with the salt of that day
   (DbHelper::createAnonymousUser -> Model::addTokenAuth), so it must hash
   with this salt to that row. (A salt changed by hand after the install
   makes it stale: a token proves the salt then, since (2) comes first.);
4. without such a row (e.g. deleted), a database whose people made no API
   token has none to lose (a ``salt_unchecked`` warning); one with tokens is
   refused unless ``MATOMO_SALT_ACCEPT_UNCHECKED=1`` says they may stop working.

A refusal is RefusedError (exit 4), raised before anything is written.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

from . import logs
from .config import Settings
from .database import Connection, State
from .errors import RefusedError

MARKER = "MatomoChart.saltCheck"
_MESSAGE = b"matomo-k8s salt check v1"
README = "README.md, 'Moving an existing Matomo to this chart'"
HOW_TO_GIVE_ONE = (
    "Put one API token of that installation into the salt Secret under the key "
    "matomo.salt.existingSecretTokenKey (default 'token'; MATOMO_SALT_CHECK_TOKEN_FILE), "
    "next to the salt (in Matomo: Administration > Personal > Security > Create new token)"
)


def fingerprint(salt: str) -> str:
    """The record's value: HMAC-SHA256 of a fixed text keyed with the salt, in hex."""
    return hmac.new(salt.encode("utf-8"), _MESSAGE, hashlib.sha256).hexdigest()


def token_hash(token: str, salt: str) -> str:
    """What Matomo stores for `token` (Model::hashTokenAuth): sha512 of token . salt."""
    return hashlib.sha512((token + salt).encode("utf-8")).hexdigest()


def _mismatch(why: str) -> str:
    return (
        f"the salt given does not match the one this database was installed with ({why}): "
        "Matomo hashes API tokens and signs sessions with it, so every API token and every "
        "login session would stop working. Nothing was changed. Give the hook the salt the "
        "database was installed with (MATOMO_SALT / MATOMO_SALT_FILE; with the chart, the "
        "Secret named by matomo.salt.existingSecret under the key "
        "matomo.salt.existingSecretKey): it is '[General] salt' in the old installation's "
        "config/config.ini.php, or the key 'salt' of the Secret <release>-salt a previous "
        f"release of this chart generated; then run the hook again (helm upgrade). See {README}."
    )


def check(settings: Settings, conn: Connection, st: State) -> None:
    """Refuses (RefusedError) a salt that is not this installed database's; reads only."""
    assert settings.salt is not None  # config.load(need={"install"|"upgrade"}) made sure
    salt = settings.salt
    option_table = f"{settings.db.prefix}option"
    tokens_table = f"{settings.db.prefix}user_token_auth"
    recorded = conn.option(MARKER)
    if recorded is not None:
        if hmac.compare_digest(recorded, fingerprint(salt)):
            logs.event("salt_checked", step="salt", by="record")
            return
        raise RefusedError(
            _mismatch(f"the record {MARKER} in {option_table} says so")
            + f" To change the salt on purpose (every token and session stops working), "
            f"delete the row option_name = '{MARKER}' from {option_table} and run the hook again"
        )
    has_tokens_table = "user_token_auth" not in st.missing_core_tables
    token = settings.salt_check_token
    if token is not None:
        if has_tokens_table and conn.token_hash_exists(token_hash(token, salt)):
            logs.event("salt_checked", step="salt", by="token")
            return
        raise RefusedError(
            _mismatch(
                "the token was not found: the API token given (MATOMO_SALT_CHECK_TOKEN_FILE; "
                "with the chart, the key matomo.salt.existingSecretTokenKey of the salt Secret) "
                f"hashed with this salt matches no row of {tokens_table}"
            )
            + " If the salt is right, the token is not one of this database's (deleted, or "
            "from another installation): put one that works in the old installation there"
        )
    anonymous = conn.anonymous_tokens() if has_tokens_table else []
    if anonymous:
        if any(hmac.compare_digest(a, token_hash("anonymous", salt)) for a in anonymous):
            logs.event("salt_checked", step="salt", by="anonymous_token")
            return
        raise RefusedError(
            _mismatch(
                f"Matomo's token of its anonymous user in {tokens_table}, which its install "
                "stored hashed with the salt of that day, does not match it"
            )
            + f" Only if you are sure the salt is right (it was changed by hand after the "
            f"install), prove it with a token. {HOW_TO_GIVE_ONE}"
        )
    tokens = conn.user_tokens() if has_tokens_table else 0
    if tokens == 0:
        logs.event(
            "salt_unchecked", logging.WARNING, step="salt", tokens=0,
            reason=f"no record {MARKER}, no token of the anonymous user and no API token in "
            "the database: nothing can check the salt, and no token can stop working",
        )  # fmt: skip
        return
    if settings.salt_accept_unchecked:
        logs.event(
            "salt_unchecked", logging.WARNING, step="salt", tokens=tokens,
            reason="MATOMO_SALT_ACCEPT_UNCHECKED=1 (matomo.salt.acceptUnchecked): if the salt "
            f"is not the one the database was installed with, its {tokens} API tokens and "
            "every login session stop working",
        )  # fmt: skip
        return
    raise RefusedError(
        f"the salt cannot be checked: this database was made outside this chart (no record "
        f"{MARKER} in {option_table}, no token of Matomo's anonymous user in {tokens_table}) "
        f"and has {tokens} API tokens, which Matomo hashed with the salt it was installed "
        "with; with another salt all of them and every login session would stop working. "
        f"Nothing was changed. {HOW_TO_GIVE_ONE}; see {README}. Or, "
        f"if you accept that all {tokens} tokens stop working should the salt be wrong, set "
        "matomo.salt.acceptUnchecked=true (MATOMO_SALT_ACCEPT_UNCHECKED=1). Then run the hook "
        "again (helm upgrade)"
    )


def record(settings: Settings, conn: Connection) -> None:
    """Records the salt's fingerprint when the database has no record yet (an INSERT
    of one option row; an existing row is never changed)."""
    assert settings.salt is not None
    if conn.option(MARKER) is not None:
        return
    conn.assert_lock_held()
    if conn.add_option(MARKER, fingerprint(settings.salt)):
        logs.event("salt_recorded", step="salt", option=MARKER)
