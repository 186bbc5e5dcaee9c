"""The adapter reference: `name`, `name/VERSION` or `name@alias` (an MLflow model version)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_VERSION = re.compile(r"^(?P<name>.+)/(?P<version>[0-9]+)$")


@dataclass(frozen=True, order=True)
class AdapterRef:
    """Points at one registered adapter version; `str()` gives the text form back.

    At most one of `version` and `alias` is set; neither means the latest version.
    """

    name: str
    version: int | None = None
    alias: str | None = None

    def __post_init__(self) -> None:
        """Refuse what would not read back: a name that is empty or holds `/` or `@`,
        a version below 1, a version with an alias."""
        if not self.name or self.name != self.name.strip() or any(c in self.name for c in "/@"):
            raise ValueError(f"invalid adapter name {self.name!r}: no '/' or '@', no blanks")
        if self.version is not None and (isinstance(self.version, bool) or self.version < 1):
            raise ValueError(f"invalid adapter version {self.version!r}: versions start at 1")
        if self.version is not None and self.alias is not None:
            raise ValueError("an adapter reference names a version or an alias, not both")
        if self.alias is not None and not self.alias:
            raise ValueError("empty alias")

    @classmethod
    def parse(cls, text: str) -> AdapterRef:
        """`name@alias`, `name/3` or `name` (latest); a `models:/` prefix is allowed."""
        body = str(text).removeprefix("models:/").strip()
        try:
            if "@" in body:
                name, _, alias = body.rpartition("@")
                if name and alias:
                    return cls(name, alias=alias)
            elif match := _VERSION.match(body):
                return cls(match["name"], version=int(match["version"]))
            elif body:
                return cls(body)
        except ValueError:
            pass
        raise ValueError(
            f"invalid adapter reference {text!r}: use name, name/VERSION or name@alias"
        )

    @classmethod
    def of(
        cls, name: str, version: int | str | None = None, alias: str | None = None
    ) -> AdapterRef:
        """From parts as MLflow and request bodies give them (the version may be a string)."""
        return cls(name, int(version) if version not in (None, "") else None, alias or None)

    @property
    def pinned(self) -> bool:
        """Whether this names one exact version."""
        return self.version is not None

    def __str__(self) -> str:
        """`name/3`, `name@alias` or `name`."""
        if self.version is not None:
            return f"{self.name}/{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name
