"""The static side of the pages: Danish and English say the same things, every
string the pages ask for is in both catalogues, no HTML-string sink is used,
and the vendored libraries are the pinned files with their licences."""

from __future__ import annotations

import hashlib
import json
import re

from tests.browser.harness import ROOT

WEB = ROOT / "web"
PLURAL = (".one", ".other")


def catalogue(lang: str) -> dict[str, str]:
    return json.loads((WEB / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))


def has(keys: dict[str, str], key: str) -> bool:
    return key in keys or all(key + suffix in keys for suffix in PLURAL)


def test_danish_and_english_have_the_same_keys() -> None:
    assert set(catalogue("da")) == set(catalogue("en"))


def test_placeholders_match_between_languages() -> None:
    da, en = catalogue("da"), catalogue("en")
    for key, text in en.items():
        assert set(re.findall(r"\{(\w+)\}", text)) == set(re.findall(r"\{(\w+)\}", da[key])), key


def test_every_string_the_code_asks_for_exists() -> None:
    da, en = catalogue("da"), catalogue("en")
    used = set()
    for path in (WEB / "js").rglob("*.js"):
        used |= set(re.findall(r"\bt\(\s*\"([a-z_.0-9]+)\"", path.read_text(encoding="utf-8")))
    assert used
    missing = sorted(k for k in used if not (has(da, k) and has(en, k)))
    assert not missing, missing


def test_user_text_never_goes_in_as_html() -> None:
    sinks = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|dangerouslySetInnerHTML"
    )
    offenders = [
        str(path.relative_to(ROOT))
        for path in (WEB / "js").rglob("*.js")
        if sinks.search(path.read_text(encoding="utf-8"))
    ]
    assert not offenders


def test_vendored_libraries_are_the_pinned_files() -> None:
    readme = (WEB / "vendor" / "README.md").read_text(encoding="utf-8")
    pinned = re.findall(r"^([0-9a-f]{64})  (\S+)$", readme, flags=re.MULTILINE)
    assert len(pinned) == 5
    for digest, name in pinned:
        path = (WEB / "vendor" / name).resolve()
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, name
        assert (path.parent / "LICENSE").is_file(), name
