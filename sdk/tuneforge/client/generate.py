"""Calling a running serving endpoint (`tuneforge serve` or the cluster's RayService)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tuneforge.contract import AdapterRef
from tuneforge.errors import AdapterNotFoundError, TuneForgeError
from tuneforge.settings import DEFAULT_SERVING_URL

_SELECTION = re.compile(r"^(?P<ref>[^=]+?)(?:=(?P<weight>-?[0-9]*\.?[0-9]+))?$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


class ServingError(TuneForgeError):
    """The serving endpoint refused or failed a request (status code and detail)."""

    def __init__(self, status_code: int, detail: str) -> None:
        """The HTTP status and the server's explanation."""
        super().__init__(f"serving answered {status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail


@dataclass(frozen=True)
class AdapterSelection:
    """One adapter of a generate request: a reference (`name`, `name@alias`, `name/3`), a weight."""

    ref: AdapterRef
    """The registered adapter version to apply."""
    weight: float = 1.0
    """LoRA scale for this request."""

    @classmethod
    def parse(cls, text: str) -> AdapterSelection:
        """Parse `NAME`, `NAME@ALIAS` or `NAME/VERSION`, each optionally `=WEIGHT` (e.g. `dog@prod=0.8`)."""
        match = _SELECTION.match(text.strip())
        try:
            if match is None:
                raise ValueError(text)
            ref = AdapterRef.parse(match["ref"])
            if not _NAME.match(ref.name) or (ref.alias and not _ALIAS.match(ref.alias)):
                raise ValueError(text)
        except ValueError:
            raise ValueError(
                f"adapter {text!r}: use NAME, NAME@ALIAS or NAME/VERSION, optionally =WEIGHT "
                "(e.g. dog-lora@production=0.8)"
            ) from None
        weight = match["weight"]
        return cls(ref, float(weight) if weight else 1.0)

    def to_wire(self) -> dict[str, Any]:
        """The request's JSON for this adapter."""
        data: dict[str, Any] = {"name": self.ref.name, "weight": self.weight}
        if self.ref.alias:
            data["alias"] = self.ref.alias
        if self.ref.version is not None:
            data["version"] = self.ref.version
        return data


def generate_png(
    prompt: str,
    adapters: list[AdapterSelection] | None = None,
    *,
    url: str = DEFAULT_SERVING_URL,
    steps: int = 25,
    guidance_scale: float = 7.5,
    width: int = 512,
    height: int = 512,
    seed: int | None = None,
    negative_prompt: str | None = None,
    token: str | None = None,
    timeout_s: float = 300.0,
) -> bytes:
    """One image from `POST {url}/v1/generate`, as PNG bytes."""
    import httpx

    body: dict[str, Any] = {
        "prompt": prompt,
        "adapters": [a.to_wire() for a in adapters or []],
        "steps": steps,
        "guidanceScale": guidance_scale,
        "width": width,
        "height": height,
    }
    if seed is not None:
        body["seed"] = seed
    if negative_prompt:
        body["negativePrompt"] = negative_prompt
    headers = {"Accept": "image/png"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = httpx.post(
            url.rstrip("/") + "/v1/generate", json=body, headers=headers, timeout=timeout_s
        )
    except httpx.HTTPError as exc:
        raise TuneForgeError(
            f"cannot reach the serving endpoint at {url} ({exc}): start one with `tuneforge serve` "
            "or pass --url"
        ) from exc
    if response.status_code == 404 and adapters:
        raise AdapterNotFoundError(_detail(response))
    if response.status_code != 200:
        raise ServingError(response.status_code, _detail(response))
    return response.content


def _detail(response: Any) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return str(response.text)[:500]
