"""Documentation that must stay true to the code."""

import re

from hack import conditions_table, corpus_coverage
from rightsizer.adapters.settings import OperatorSettings
from rightsizer.api.conditions import CONDITION_ORDER, ConditionType, Reason
from tests.unit.helpers import REPO


def test_every_operator_setting_is_documented() -> None:
    text = (REPO / "docs" / "operator.md").read_text()
    missing = [
        f"RIGHTSIZER_{name.upper()}"
        for name in OperatorSettings.model_fields
        if f"`RIGHTSIZER_{name.upper()}`" not in text
    ]
    assert not missing, f"document these in docs/operator.md: {missing}"


def test_readme_starts_with_the_demo_and_test_commands() -> None:
    lines = (REPO / "README.md").read_text().splitlines()
    assert lines[0] == "# rightsizer"
    commands = [line.split("#")[0].strip() for line in lines[1:6] if line.startswith("make ")]
    assert commands == ["make demo", "make test"]
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci


def test_latency_corpus_coverage_tables_are_generated_from_the_csv() -> None:
    text = corpus_coverage.DOC.read_text()
    assert corpus_coverage.render(text) == text, "run hack/corpus_coverage.py"


def test_condition_tables_are_generated_from_the_constants() -> None:
    text = conditions_table.DOC.read_text()
    assert conditions_table.current(text) == conditions_table.render(), "run hack/conditions_table.py"


def test_every_condition_type_and_reason_has_one_sentence() -> None:
    entries = conditions_table.condition_types() + conditions_table.reasons() + conditions_table.violation_kinds()
    assert {e.name for e in conditions_table.reasons()} == {n for n in vars(Reason) if n.isupper()}
    assert not [e.name for e in entries if not e.sentence.endswith(".")], "a sentence after every constant"
    types = [t.value for t in conditions_table.condition_types()]
    for reason in conditions_table.reasons():
        where, colon, meaning = reason.sentence.partition(": ")
        assert colon and meaning, f"{reason.name}: its sentence reads 'Where: meaning.'"
        assert "event" in where or any(f"{t}=" in where for t in types), f"{reason.name}: where does it appear?"


def test_reasons_are_distinct_and_valid_condition_reasons() -> None:
    # metav1.Condition.reason: ^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$, at most 1024 characters.
    values = [e.value for e in conditions_table.reasons() + conditions_table.violation_kinds()]
    assert len(values) == len(set(values))
    assert all(re.fullmatch(r"[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?", v) for v in values)
    assert tuple(vars(ConditionType)[n] for n in vars(ConditionType) if n.isupper()) == CONDITION_ORDER


def test_every_reason_is_written_somewhere() -> None:
    code = "\n".join(
        path.read_text() for path in (REPO / "operator" / "rightsizer").rglob("*.py") if path.name != "conditions.py"
    )
    unused = [e.name for e in conditions_table.reasons() if f"Reason.{e.name}" not in code]
    assert not unused, f"constants nothing writes: {unused}"
