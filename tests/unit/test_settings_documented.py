"""Every setting Chatgate reads is in the operator's settings reference and in the README's table."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from chatgate.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


class RecordingEnvironment(dict[str, str]):
    """An empty environment that notes every name asked of it."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)


def documented(path: Path) -> set[str]:
    """The variables named in the first cell of a table row in ``path``."""
    rows = re.findall(r"^\| (`CHATGATE_[^|]*)\|", path.read_text(), re.MULTILINE)
    return {name for cell in rows for name in re.findall(r"`(CHATGATE_[A-Z_]+)`", cell)}


def test_every_setting_is_documented() -> None:
    env = RecordingEnvironment()
    Settings.from_env(env)
    read = {name for name in env.asked if name.startswith("CHATGATE_")}
    assert len(read) >= 20
    assert read - documented(ROOT / "docs" / "deploy.md") == set()
    readme = documented(ROOT / "README.md") | {
        name
        for row in re.findall(r"^\| `CHATGATE_.*", (ROOT / "README.md").read_text(), re.MULTILINE)
        for name in re.findall(r"`(CHATGATE_[A-Z_]+)`", row)
    }
    assert read - readme == set()
