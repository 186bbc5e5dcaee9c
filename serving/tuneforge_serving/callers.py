"""Who is calling the API, and which adapters they may use and list.

`Authenticator` maps a bearer token to a `Caller`: the main token (`auth.tokenEnv`/`tokenFile`)
may use every adapter; each of `auth.callers` only the adapters its scope names. A request
for an adapter outside the caller's scope answers 403 naming the rule, before the registry is
asked (so a 403 says nothing about whether the adapter exists); listing shows only the
caller's adapters.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from tuneforge_serving.config import CallerConfig
from tuneforge_serving.errors import ServingError


class Unauthorized(ServingError):
    """No token, or one no caller has."""

    status = 401


class Forbidden(ServingError):
    """The caller's token is valid but its scope does not cover the adapter."""

    status = 403


@dataclass(frozen=True)
class Caller:
    """An authenticated caller; `scope` None may use every adapter."""

    name: str
    scope: CallerConfig | None = None

    def allows(self, adapter: str) -> bool:
        """True when this caller may use and list `adapter`."""
        return self.scope is None or self.scope.allows(adapter)

    def check(self, adapters: Iterable[str]) -> None:
        """403 naming the first adapter outside the caller's scope, and the rule."""
        if self.scope is None:
            return
        for adapter in adapters:
            if not self.scope.allows(adapter):
                raise Forbidden(
                    f"adapter {adapter!r} is outside caller {self.name!r}'s scope (auth.callers "
                    f"adapterPrefixes/adapters: {self.scope.scope_text()}): use one of your "
                    "adapters (GET /v1/adapters lists them)"
                )


EVERYONE = Caller("anyone")
"""The caller when auth is disabled."""
MAIN = Caller("main token")
"""The caller holding the main token: every adapter."""


class Authenticator:
    """Bearer tokens -> callers, compared in constant time against every token."""

    def __init__(self, main_token: str | None, callers: list[tuple[CallerConfig, str]]) -> None:
        self._tokens: list[tuple[bytes, Caller]] = [
            (token.encode(), Caller(config.name, config)) for config, token in callers
        ]
        if main_token is not None:
            self._tokens.append((main_token.encode(), MAIN))

    @property
    def open(self) -> bool:
        """True when no token is configured (auth explicitly disabled)."""
        return not self._tokens

    def authenticate(self, given: str | None) -> Caller:
        """The caller holding `given`; 401 when none does (or none was sent)."""
        if self.open:
            return EVERYONE
        sent = (given or "").encode()
        found = None
        for token, caller in self._tokens:  # no early exit: the time says nothing
            if hmac.compare_digest(sent, token):
                found = caller
        if found is None:
            raise Unauthorized("missing or wrong bearer token: send Authorization: Bearer <token>")
        return found
