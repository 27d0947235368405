"""The main job: train the iris classifier, save it, load it back and run it.

Every step goes through ``caikit_mm.ModelManager`` with the default
configuration: ``train`` on a named trainer, then ``load`` of the saved folder
through the default finder and initializer. The job prints a JSON report::

    python -m caikit_mm_examples.main [--save-path DIR] [--trainer NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from typing import Any, Final

# One row per 25 of the 150 iris rows: two of each class (rows 0-49 are setosa,
# 50-99 versicolor, 100-149 virginica).
SAMPLE_ROWS: Final = (0, 25, 50, 75, 100, 125)


def build_parser() -> argparse.ArgumentParser:
    """Build the command line parser of the main job."""
    parser = argparse.ArgumentParser(
        prog="python -m caikit_mm_examples.main",
        description=(
            "Train the example iris classifier through caikit_mm.ModelManager, save "
            "it, load the saved folder and run it on a few iris rows."
        ),
    )
    parser.add_argument(
        "--save-path",
        metavar="DIR",
        help=(
            "folder to save the trained model into; it must not exist yet. Default: "
            "a new folder under the system's temporary directory, left in place"
        ),
    )
    parser.add_argument(
        "--trainer",
        metavar="NAME",
        help="trainer instance name from the configuration (default: default)",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of a failure"
    )
    return parser


def run_job(save_path: str | None = None, trainer: str | None = None) -> dict[str, Any]:
    """Train, save, load and run the iris classifier, and return the report.

    Args:
        save_path: Folder to save the model into; a new temporary folder when
            ``None``.
        trainer: Trainer instance name; ``None`` means "default".

    Raises:
        Exception: The training's own failure, with its original type.
    """
    import caikit_mm

    from .iris import IrisClassifier

    if save_path is None:
        save_path = os.path.join(tempfile.mkdtemp(prefix="caikit-mm-iris-"), "iris")
    manager = caikit_mm.ModelManager()
    future = manager.train(IrisClassifier, trainer=trainer, save_path=save_path)
    status = future.wait()
    if status is not caikit_mm.TrainingStatus.COMPLETED:
        # Re-raises the job's own error; a canceled job raises too.
        future.load()
    model = manager.load(future.save_path)
    rows, expected = _sample_rows()
    predictions = model.run(rows)
    return {
        "training_id": future.id,
        "trainer": trainer or "default",
        "status": status.value,
        "save_path": future.save_path,
        "module_id": model.MODULE_ID,
        "accuracy": model.metrics.get("accuracy"),
        "predictions": [
            {
                "row": index,
                "input": row,
                "expected": want,
                "predicted": prediction["label"],
                "probability": round(
                    prediction["probabilities"][prediction["label"]], 4
                ),
            }
            for index, row, want, prediction in zip(
                SAMPLE_ROWS, rows, expected, predictions, strict=True
            )
        ],
    }


def _sample_rows() -> tuple[list[list[float]], list[str]]:
    from sklearn.datasets import load_iris

    data = load_iris()
    rows = [data.data[index].tolist() for index in SAMPLE_ROWS]
    expected = [str(data.target_names[data.target[index]]) for index in SAMPLE_ROWS]
    return rows, expected


def format_report(report: dict[str, Any]) -> str:
    """Render the report as indented JSON with one line per prediction."""
    head = json.dumps({**report, "predictions": []}, indent=2)
    rows = ",\n".join(f"    {json.dumps(p)}" for p in report["predictions"])
    return head.replace('"predictions": []', f'"predictions": [\n{rows}\n  ]')


def main(argv: Sequence[str] | None = None) -> int:
    """Run the main job and print its JSON report; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        report = run_job(args.save_path, args.trainer)
    except Exception as exc:
        if args.debug:
            raise
        message = str(exc).splitlines()[0] if str(exc) else ""
        print(
            f"caikit_mm_examples.main: {type(exc).__name__}: {message} "
            "(rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1
    print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
