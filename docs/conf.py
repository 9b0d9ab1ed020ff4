"""Sphinx configuration: ``python -m sphinx -b html docs docs/_build/html`` (no network needed)."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # the gallery extension beside this file

project = "pyot"
author = "the pyot developers"
try:
    release = importlib.metadata.version("pyot-engine")
except importlib.metadata.PackageNotFoundError:  # building from a checkout without install
    release = "dev"
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",  # numpydoc-style docstrings
    "sphinx.ext.viewcode",
    "gallery",
]
autosummary_generate = True
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "description"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
templates_path = []
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path = []
