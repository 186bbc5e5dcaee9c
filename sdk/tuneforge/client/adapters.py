"""Registered adapters as `Client.adapters()` returns them; the registry defines and lists them."""

from tuneforge.registry import AdapterVersion, RegisteredAdapter

__all__ = ["AdapterVersion", "RegisteredAdapter"]
