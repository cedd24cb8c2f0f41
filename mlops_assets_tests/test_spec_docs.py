"""``docs/spec.md`` is generated from the pydantic schema and kept in sync: regenerate and
compare."""

import subprocess
import sys
from pathlib import Path

from pydantic import BaseModel, Field

from mlops_assets.core.spec import DatasetSpec
from mlops_assets.core.spec_docs import COLUMN, DESCRIPTIONS, NO_MEANING, render_markdown, spec_rows

DOC = Path(__file__).resolve().parents[1] / "docs" / "spec.md"
REFRESH = "python -m mlops_assets.core.spec_docs > docs/spec.md"


def _schema_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every field path of the schema, walked independently of the generator."""
    out = set()
    for name, info in model.model_fields.items():
        path = prefix + name
        out.add(path)
        args = getattr(info.annotation, "__args__", ())
        nested = [
            a for a in (info.annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        if getattr(info.annotation, "__origin__", None) is dict and nested:  # per-column entries
            out |= _schema_paths(nested[0], f"{path}.{COLUMN}.")
        elif nested:
            out |= _schema_paths(nested[0], path + ".")
    return out


def test_docs_spec_md_is_the_generated_reference():
    assert DOC.read_text() == render_markdown(), (
        f"docs/spec.md is out of date with spec.py: run `{REFRESH}`"
    )


def test_every_schema_field_is_documented_with_meaning_default_and_example():
    rows = spec_rows()
    assert {r.path for r in rows} == _schema_paths(DatasetSpec)
    no_meaning = [r.path for r in rows if r.meaning == NO_MEANING or not r.meaning]
    assert not no_meaning, (
        f"fields without a meaning: give them Field(description=...) in spec.py: {no_meaning}"
    )
    assert all(r.default for r in rows)
    assert not [
        r.path
        for r in rows
        if not r.section and not r.example.startswith(f"`{r.path.rsplit('.', 1)[-1]}: ")
    ]
    text = render_markdown()
    assert "| `features.numeric.<column>.min` | number or null | `null` |" in text
    assert (
        "`window_days: 28`" in text
    )  # examples come from the bundled specs (the default spec first)


def test_the_schema_description_wins_over_the_mapping_and_a_docstring_describes_a_section():
    class Inner(BaseModel):
        """A section of its own."""

        knob: int = Field(default=3, ge=1, description="turns the thing")

    class Outer(BaseModel):
        name: str = Field(description="from the schema")
        inner: Inner = Field(default_factory=Inner)

    rows = {r.path: r for r in spec_rows(Outer, specs=[])}
    assert "name" in DESCRIPTIONS and rows["name"].meaning == "from the schema"
    assert rows["inner"].meaning == "A section of its own." and rows["inner"].section
    assert rows["inner.knob"].kind == "integer (≥ `1`)" and rows["inner.knob"].default == "`3`"
    assert rows["inner.knob"].example == "`knob: 3`"  # no bundled example: the default


def test_the_refresh_command_prints_the_reference():
    out = subprocess.run(
        [sys.executable, "-m", "mlops_assets.core.spec_docs"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == render_markdown()
