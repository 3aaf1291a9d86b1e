"""setuptools reads everything from pyproject.toml; this file only adds
fabops-inv.pth to the install, beside the `fabops` package (a .pth file
must sit in site-packages itself, which pyproject.toml cannot say). It lets
`inv` serve fabops' tasks from its first line: fabops/invhook.py says why."""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

PTH = Path(__file__).resolve().parent / "fabops-inv.pth"


class BuildPy(build_py):
    """A wheel (pip install ., pipx, a built wheel): the .pth at its root."""

    def run(self):
        super().run()
        self.copy_file(str(PTH), str(Path(self.build_lib) / PTH.name))

    def get_outputs(self, include_bytecode=1):
        return super().get_outputs(include_bytecode) + [str(Path(self.build_lib) / PTH.name)]


class EditableWheel(editable_wheel):
    """pip install -e: setuptools puts only its own path hook in an editable
    wheel; every file in the directory it unpacks there goes in, so the
    .pth is copied there as it is made."""

    def _install_namespaces(self, installation_dir, pth_prefix):
        super()._install_namespaces(installation_dir, pth_prefix)
        self.copy_file(str(PTH), str(Path(installation_dir) / PTH.name))


setup(cmdclass={"build_py": BuildPy, "editable_wheel": EditableWheel})
