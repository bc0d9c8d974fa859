"""The periodic cleanup drops expired UIA sessions, pending media ids and OpenID tokens.

Config: `cleanup_second_interval` (Conduit's setting) paces it; here it is run once
directly with clocks moved past the expiry.
"""

from __future__ import annotations

import logging

from matrix_conduit.service.cleanup import Cleanup
from matrix_conduit.service.openid import TOKEN_LIFETIME_SECONDS, OpenId
from matrix_conduit.storage import open_database


def test_expired_openid_tokens_are_deleted_and_live_ones_kept(tmp_path):
    now = [1000.0]
    db = open_database("leveldb", str(tmp_path / "db"))
    try:
        openid = OpenId(db, clock=lambda: now[0])
        old, _ = openid.create_token("@old:localhost")
        now[0] += TOKEN_LIFETIME_SECONDS + 1
        new, _ = openid.create_token("@new:localhost")
        Cleanup(60, [openid.purge_expired]).run_once()
        assert len(list(db.tree("openidtoken_expiresatuserid").iter_prefix())) == 1
        assert openid.user_for(new) == "@new:localhost"
        assert openid.user_for(old) is None
    finally:
        db.close()


def test_a_failing_cleanup_task_is_logged_and_the_others_still_run(caplog):
    ran = []

    def broken() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR):
        Cleanup(60, [broken, lambda: ran.append(True)]).run_once()
    assert ran == [True]
    assert "cleanup task" in caplog.text
