"""The contract package imports only the standard library and pydantic.

Trainer, operator, serving and SDK all import it, so it may pull in nothing they do not all
have (`.importlinter` forbids the other tuneforge modules and the torch stack by name; this
test also catches any other third-party import).
"""

from __future__ import annotations

import sys

import grimp

ALLOWED_THIRD_PARTY = {"pydantic"}


def test_the_contract_imports_only_the_standard_library_and_pydantic() -> None:
    graph = grimp.build_graph("tuneforge", include_external_packages=True, cache_dir=None)
    contract = graph.find_descendants("tuneforge.contract") | {"tuneforge.contract"}
    outside = {
        (importer, imported)
        for importer in contract
        for imported in graph.find_modules_directly_imported_by(importer)
        if imported not in contract
        and imported.split(".")[0] not in sys.stdlib_module_names | ALLOWED_THIRD_PARTY
    }
    assert not outside, f"tuneforge.contract imports beyond stdlib and pydantic: {sorted(outside)}"
