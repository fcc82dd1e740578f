"""The shipped presets and themes travel inside the package of a wheel (`pip install .` or from git); an editable
install reads them from the checkout. Everything else is in pyproject.toml."""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = ("presets", "themes")  # top-level folders of the checkout


class BuildPyWithShipped(build_py):
    def run(self) -> None:
        super().run()
        for name in SHIPPED:
            target = Path(self.build_lib) / "vitlab" / "shipped" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(Path(__file__).parent / name, target)


setup(cmdclass={"build_py": BuildPyWithShipped})
