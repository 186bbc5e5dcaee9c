"""No import cycles between the modules of the four packages.

Every import counts: module level, inside functions, and under `TYPE_CHECKING` (a cycle
that only type checkers see is still two modules that each need the other).
"""

from __future__ import annotations

import grimp

PACKAGES = ("tuneforge", "tuneforge_operator", "tuneforge_trainer", "tuneforge_serving")


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Each cycle once, as the modules along it (the first one repeated at the end)."""
    cycles: dict[frozenset[str], list[str]] = {}
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                cycles.setdefault(frozenset(back), [importer, *back])
    return list(cycles.values())


def test_the_packages_have_no_import_cycles() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    cycles = import_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_a_cycle_is_found_and_listed() -> None:
    graph = grimp.ImportGraph()
    for module in ("pkg.a", "pkg.b", "pkg.c", "pkg.d"):
        graph.add_module(module)
    graph.add_import(importer="pkg.a", imported="pkg.b")
    graph.add_import(importer="pkg.b", imported="pkg.c")
    graph.add_import(importer="pkg.c", imported="pkg.a")
    graph.add_import(importer="pkg.c", imported="pkg.d")
    assert import_cycles(graph) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]
