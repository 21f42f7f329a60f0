"""The operators' command line: what it refuses before it touches any store."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from chalicelib import cli, config


@pytest.fixture
def no_store(monkeypatch):
    """Any use of the store fails the test: the refusal must come first."""
    def touched(*_a, **_k):
        raise AssertionError("the store was used")

    monkeypatch.setattr(cli, "_bind_store", touched)


def tomorrow() -> str:
    return (datetime.now(timezone.utc) + timedelta(days=1)).date().isoformat()


def test_a_deployed_stage_refuses_to_renew_a_future_day(monkeypatch, no_store, capsys):
    monkeypatch.setattr(config, "settings", lambda: SimpleNamespace(is_local=False))
    assert cli.main(["renew", "--date", tomorrow()]) == 2
    assert capsys.readouterr().err == f"renew: {tomorrow()} is after today (UTC); a deployed stage renews nothing early.\n"


def test_a_local_stage_may_play_time_forward(monkeypatch, no_store):
    monkeypatch.setattr(config, "settings", lambda: SimpleNamespace(is_local=True))
    with pytest.raises(AssertionError, match="the store was used"):
        cli.main(["renew", "--date", tomorrow()])
