"""Rebuild the packaged iris model: train with the default parameters and save it.

The folder ``caikit_mm_examples/models/iris`` in the source tree was written by this
script. Run it again after changing ``IrisClassifier`` or its training defaults::

    python -m caikit_mm_examples.build_model \
        examples/iris_library/caikit_mm_examples/models/iris

The output folder is replaced only when it is missing, empty, or an
``IrisClassifier`` model already. The new model is saved to a temporary folder
beside it and swapped in, so a failed run leaves the old folder as it was.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Sequence

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """Build the command line parser of the model build script."""
    parser = argparse.ArgumentParser(
        prog="python -m caikit_mm_examples.build_model",
        description=(
            "Train IrisClassifier with its default parameters and save it to DIR, "
            "replacing the IrisClassifier model that DIR contains."
        ),
    )
    parser.add_argument(
        "output",
        metavar="DIR",
        help=(
            "model folder to write, such as "
            "examples/iris_library/caikit_mm_examples/models/iris"
        ),
    )
    return parser


def build_model(output: str) -> str:
    """Train the default iris model and save it to ``output``; return the real path.

    Raises:
        FileNotFoundError: The parent folder of ``output`` does not exist.
        FileExistsError: ``output`` is a file, or a folder that is not empty and
            not an IrisClassifier model.
        OSError: Writing or renaming a folder failed.
    """
    from .iris import IrisClassifier

    target = os.path.abspath(os.path.expanduser(output))
    parent = os.path.dirname(target)
    if not os.path.isdir(parent):
        raise FileNotFoundError(
            f"Parent folder {parent!r} of the output {output!r} does not exist. "
            "Create it first, or pass a path inside an existing folder."
        )
    _check_replaceable(target)
    model = IrisClassifier.train()
    staging = tempfile.mkdtemp(prefix=".iris-build-", dir=parent)
    try:
        model.save(staging)
        _apply_umask_modes(staging)
        _swap_into_place(staging, target)
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging)
    log.info("Saved the iris model to %s", target)
    return target


def _check_replaceable(target: str) -> None:
    from caikit_mm.errors import CaikitMMError
    from caikit_mm.modules import ModuleConfig

    from .iris import MODULE_ID

    if not os.path.lexists(target):
        return
    if not os.path.isdir(target) or os.path.islink(target):
        raise FileExistsError(
            f"Output {target!r} exists and is not a folder. Remove it or choose "
            "another path."
        )
    if not os.listdir(target):
        return
    try:
        module_id = ModuleConfig.load(target).module_id
    except (CaikitMMError, OSError):
        module_id = None
    if module_id != MODULE_ID:
        raise FileExistsError(
            f"Output folder {target!r} is not empty and is not an IrisClassifier "
            f"model (module_id {MODULE_ID}), so it is left untouched. Remove it or "
            "choose another path."
        )


def _apply_umask_modes(folder: str) -> None:
    # mkdtemp and atomic writes create owner-only entries. A shipped model must
    # be readable by everyone, as a plain mkdir and open would leave it.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for name in os.listdir(folder):
        os.chmod(os.path.join(folder, name), 0o666 & ~umask)


def _swap_into_place(staging: str, target: str) -> None:
    # os.replace cannot replace a folder that has files, so the old folder is
    # renamed aside first and deleted once the new one is in place.
    if not os.path.exists(target):
        os.replace(staging, target)
        return
    old = f"{target}.old-{uuid.uuid4().hex}"
    os.replace(target, old)
    try:
        os.replace(staging, target)
    except OSError:
        os.replace(old, target)
        raise
    shutil.rmtree(old)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the script; print the saved folder and return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        target = build_model(args.output)
    except OSError as exc:
        print(f"caikit_mm_examples.build_model: {exc}", file=sys.stderr)
        return 1
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
