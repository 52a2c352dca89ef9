"""A run writes only inside ``OUT/NAME/``: a name is one path component (issue 15, item 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from regopt.cli import main
from regopt.lab.config import ConfigError, RunConfig, validate
from regopt.lab.runs import RunDirError, run
from tests.conftest import small_raw


@pytest.mark.parametrize("name", ["..", ".", "a/b", "../x", "/abs", "a\\b", "tab\there", "x" * 101, ""])
def test_a_name_that_is_not_one_path_component_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match=r"^config: name: "):
        validate({**small_raw(), "name": name})


def test_cli_refuses_dotdot_in_one_line_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.toml"
    config.write_text('name = "run"\n[data]\nname = "moons"\n[train]\nepochs = 1\n')
    out = tmp_path / "inner" / "runs"
    code = main(["run", str(config), "--out", str(out), "--set", 'name=".."', "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is not a run name" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]


def test_a_hand_built_config_cannot_escape_either(tmp_path: Path) -> None:
    config = RunConfig.model_construct(**{**validate(small_raw()).__dict__, "name": ".."})
    with pytest.raises(RunDirError, match="would write outside"):
        run(config, out=tmp_path / "runs")
    assert not any(tmp_path.iterdir())
