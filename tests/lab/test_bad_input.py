"""Bad input ends in one line naming what is wrong and where, never a traceback (issue 15, item 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from regopt.cli import main
from regopt.lab.config import ConfigError, read_toml


def test_a_config_that_is_not_utf8_is_refused_naming_the_file_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(b'name = "caf\xe9"\n')
    with pytest.raises(ConfigError) as info:
        read_toml(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "UTF-8" in message and "byte 11 (line 1) is 0xe9" in message
    assert "\n" not in message


def test_cli_refuses_a_non_utf8_config_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(b"\xff\xfe[train]\n")
    code = main(["run", str(path), "--out", str(tmp_path / "runs"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("regopt: error: ") and "byte 0" in err[0]
    assert not (tmp_path / "runs").exists()
