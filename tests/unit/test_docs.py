"""Documentation that must stay true to the code."""

from rightsizer.adapters.settings import OperatorSettings
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
