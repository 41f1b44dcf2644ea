from __future__ import annotations

import re
from pathlib import Path

import pytest

from server.settings import ENVIRONMENT_VARIABLES, Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("variable", ENVIRONMENT_VARIABLES)
def test_every_setting_is_documented_in_the_readme(variable: str) -> None:
    assert re.search(rf"^\| `{variable}` \|", README, re.MULTILINE), f"{variable} is not documented"


def test_settings_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {"TING_PORT": "9001", "TING_ALLOWED_ORIGINS": "https://a.example, https://b.example/",
         "TING_ADMIN_TOKEN": "secret", "TING_VOTE_INTERVAL": "0.5"}
    )
    assert settings.port == 9001
    assert settings.allowed_origins == ("https://a.example", "https://b.example")
    assert settings.admin_token == "secret" and not settings.admin_token_generated
    assert settings.vote_interval == 0.5


def test_an_unset_admin_token_is_generated_and_random() -> None:
    first, second = Settings.from_env({}), Settings.from_env({})
    assert first.admin_token_generated and len(first.admin_token) >= 32
    assert first.admin_token != second.admin_token


def test_a_retention_below_the_protocol_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="10000"):
        Settings.from_env({"TING_EVENT_RETENTION": "500"})
