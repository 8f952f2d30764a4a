"""The package's architecture holds at the level of modules: the contracts of pyproject.toml, and no circles.

``lint-imports`` (run by .ci/run) checks the floors and the packages; this
test checks, from the same import graph (imports inside functions counted,
``if TYPE_CHECKING:`` ones not), that no module imports one that imports it
back, however indirectly, and that the walk of one fill stays on its floors.
"""

import grimp
import pytest

PACKAGE = "napari_inpaint"


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(PACKAGE, exclude_type_checking_imports=True)


def test_no_module_imports_one_that_imports_it_back(graph):
    circles = sorted(
        (importer, imported)
        for importer in graph.modules
        for imported in graph.find_modules_directly_imported_by(importer)
        if imported.startswith(PACKAGE) and imported != importer and graph.chain_exists(imported, importer)
    )
    assert circles == [], "\n".join(
        " -> ".join(graph.find_shortest_chain(imported, importer) + (imported,)) for importer, imported in circles
    )


@pytest.mark.parametrize(
    "low, high",
    [
        ("napari_inpaint.registry", "napari_inpaint.methods"),
        ("napari_inpaint.methods", "napari_inpaint.engine"),
        ("napari_inpaint.engine", "napari_inpaint.io"),
        ("napari_inpaint.engine", "napari_inpaint.napari"),
        ("napari_inpaint.engine", "napari_inpaint.cli"),
    ],
)
def test_lower_floors_never_reach_higher_ones(graph, low, high):
    chains = graph.find_shortest_chains(importer=low, imported=high, as_packages=True)
    assert not chains, f"{low} reaches {high}: {sorted(chains)}"


def test_the_engine_is_reached_by_every_front_end_through_one_job(graph):
    # Each front end builds a FillJob (napari_inpaint.engine.job) and runs it; none assembles a fill itself.
    for front_end in ("napari_inpaint.cli._fill", "napari_inpaint.napari.fill", "napari_inpaint.evaluation"):
        assert graph.chain_exists(front_end, "napari_inpaint.engine.job")
        internals = {"napari_inpaint.engine.unit", "napari_inpaint.engine.memory", "napari_inpaint.engine.graph"}
        assert not internals & graph.find_modules_directly_imported_by(front_end), front_end
