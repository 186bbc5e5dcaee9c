"""`AdapterRef`: the `name`, `name/VERSION`, `name@alias` text form, parsed and formatted."""

from __future__ import annotations

import pytest

from tuneforge.contract import AdapterRef


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dogs", AdapterRef("dogs")),
        ("dogs/3", AdapterRef("dogs", version=3)),
        ("dogs@champion", AdapterRef("dogs", alias="champion")),
        ("models:/dogs/12", AdapterRef("dogs", version=12)),
        ("models:/dogs@prod", AdapterRef("dogs", alias="prod")),
        ("  sks-dog_v2 ", AdapterRef("sks-dog_v2")),
    ],
)
def test_parse(text: str, expected: AdapterRef) -> None:
    assert AdapterRef.parse(text) == expected


@pytest.mark.parametrize("text", ["dogs", "dogs/3", "dogs@champion", "my dogs/10"])
def test_format_and_parse_round_trip(text: str) -> None:
    assert str(AdapterRef.parse(text)) == text


@pytest.mark.parametrize(
    "ref", [AdapterRef("a"), AdapterRef("a", version=1), AdapterRef("a", alias="x")]
)
def test_parse_of_str_gives_the_same_reference(ref: AdapterRef) -> None:
    assert AdapterRef.parse(str(ref)) == ref


def test_the_version_is_an_int_and_pins_the_reference() -> None:
    ref = AdapterRef.parse("dogs/7")
    assert ref.version == 7 and isinstance(ref.version, int)
    assert ref.pinned
    assert not AdapterRef.parse("dogs@prod").pinned and not AdapterRef.parse("dogs").pinned


def test_of_takes_versions_as_mlflow_gives_them() -> None:
    assert AdapterRef.of("dogs", "3") == AdapterRef("dogs", version=3)
    assert AdapterRef.of("dogs", 3) == AdapterRef("dogs", version=3)
    assert AdapterRef.of("dogs", "", "") == AdapterRef("dogs")
    assert AdapterRef.of("dogs", None, "prod") == AdapterRef("dogs", alias="prod")


@pytest.mark.parametrize(
    "text",
    ["", "   ", "models:/", "dogs@", "@prod", "dogs/0", "dogs/-1", "/3", "a/b/3", "a@b@c"],
)
def test_invalid_text_is_refused_naming_the_forms(text: str) -> None:
    with pytest.raises(ValueError, match="name, name/VERSION or name@alias"):
        AdapterRef.parse(text)


@pytest.mark.parametrize(
    ("name", "version", "alias"),
    [
        ("", None, None),
        (" dogs", None, None),
        ("dogs/3", None, None),  # would read back as version 3 of `dogs`
        ("dogs@prod", None, None),  # would read back as an alias
        ("dogs", 0, None),
        ("dogs", True, None),
        ("dogs", 3, "prod"),
        ("dogs", None, ""),
    ],
)
def test_invalid_parts_are_refused(name: str, version: int | None, alias: str | None) -> None:
    with pytest.raises(ValueError):
        AdapterRef(name, version, alias)


def test_of_refuses_a_version_that_is_not_a_number() -> None:
    with pytest.raises(ValueError):
        AdapterRef.of("dogs", "latest")
