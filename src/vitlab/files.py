"""Where vitlab finds what ships with it (the checkout) and what a user keeps ($XDG_CONFIG_HOME/vitlab), and how
it writes a file whole."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the checkout, for an editable install


def shipped_dir(name: str) -> Path:
    """presets/ or themes/ as vitlab ships them: the checkout's (an editable install), else the copy a wheel
    carries in the package (setup.py puts it there)."""
    checkout = PACKAGE_ROOT / name
    return checkout if checkout.is_dir() else Path(__file__).resolve().parent / "shipped" / name


def config_dir() -> Path:
    """The user's vitlab folder: presets, themes, settings. An empty XDG_CONFIG_HOME counts as unset, as the XDG
    spec says (read as a path, it put presets in a relative `vitlab/presets` and the settings in ~/.config)."""
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "vitlab"


def write_whole(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, fsync, then rename: readers see the old file or the new one, never
    half of one (a full disk, a kill). OSError as it came, the temporary file removed."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
