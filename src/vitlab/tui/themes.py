"""vitlab's themes: read from themes/*.yaml (the checkout's and the user's own) and registered at start."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from textual.theme import Theme

from ..files import config_dir, shipped_dir

DEFAULT_THEME = "vitlab-dark"
THEME_KEYS = ("name", "primary", "secondary", "warning", "error", "success", "accent", "foreground",
              "background", "surface", "panel", "boost", "dark", "luminosity_spread", "text_alpha", "variables")

# Used only when themes/ is not beside the package (a wheel install without the checkout).
FALLBACK = {
    "vitlab-dark": {"name": "vitlab-dark", "dark": True, "primary": "#5FA8FF", "secondary": "#8C7CF0",
                    "accent": "#FFB86B", "foreground": "#D8DEE9", "background": "#10141B",
                    "surface": "#161C25", "panel": "#1F2733", "success": "#6CCB8A", "warning": "#F2C46D",
                    "error": "#F2777A"},
    "vitlab-light": {"name": "vitlab-light", "dark": False, "primary": "#1F5FBF", "secondary": "#6A4FC8",
                     "accent": "#B35900", "foreground": "#1D232B", "background": "#F7F8FA",
                     "surface": "#FFFFFF", "panel": "#E6EAF0", "success": "#1E7B3A", "warning": "#8A6100",
                     "error": "#B3261E"},
}


def theme_dirs() -> list[Path]:
    return [shipped_dir("themes"), config_dir() / "themes"]


def theme_from_dict(data: dict[str, Any]) -> Theme:
    unknown = set(data) - set(THEME_KEYS)
    if unknown:
        raise ValueError(f"unknown theme keys: {', '.join(sorted(unknown))}")
    return Theme(**data)


def load_themes() -> tuple[list[Theme], list[str]]:
    """Every theme found (later directories override earlier ones by name), and one problem per bad file."""
    found: dict[str, Theme] = {}
    problems: list[str] = []
    for d in theme_dirs():
        for path in sorted(d.glob("*.y*ml")) if d.is_dir() else []:
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
                if not isinstance(data, dict):
                    raise ValueError("a theme is a mapping of Theme fields")
                data.setdefault("name", path.stem)
                theme = theme_from_dict(data)
                found[theme.name] = theme
            except (OSError, yaml.YAMLError, ValueError, TypeError) as e:
                problems.append(f"{path}: {e}")
    for name, data in FALLBACK.items():
        found.setdefault(name, theme_from_dict(data))
    return list(found.values()), problems
