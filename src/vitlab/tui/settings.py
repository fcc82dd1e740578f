"""Settings remembered between sessions (the theme), in $XDG_CONFIG_HOME/vitlab/settings.yaml."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..files import config_dir, write_whole


def settings_path() -> Path:
    return config_dir() / "settings.yaml"


def load_settings() -> dict[str, Any]:
    try:
        data = yaml.safe_load(settings_path().read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def save_settings(**changes: Any) -> None:
    """Merge `changes` into the settings file; a read-only config dir is not an error worth a crash."""
    data = load_settings()
    data.update(changes)
    path = settings_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_whole(path, yaml.safe_dump(data, sort_keys=True).encode("utf-8"))
    except OSError:
        pass
