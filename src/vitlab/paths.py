"""Where vitlab finds what ships with it (the checkout) and what a user keeps ($XDG_CONFIG_HOME/vitlab)."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the checkout, for an editable install


def config_dir() -> Path:
    """The user's vitlab folder: presets, themes, settings. An empty XDG_CONFIG_HOME counts as unset, as the XDG
    spec says (read as a path, it put presets in a relative `vitlab/presets` and the settings in ~/.config)."""
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "vitlab"
