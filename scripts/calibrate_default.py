"""Fit the default calibration shipped with the package (`assistant/data/calibration.json`,
and `calibration-int8.json` with `ESS_ASSISTANT_PRECISION=int8`: int8 vectors shift the
signals a little, so each precision is fitted on its own vectors).

It is `ess-assistant calibrate` on two bases at once, so that the fitted rules hold across
base sizes: the bundled corpus (9 resources) with the tuning part of
`tests/data/sets/bundled.jsonl`, the training questions `training-bundled.jsonl` and the
earlier sets `tests/data/eval_questions.jsonl` and `eval_heldout.jsonl`, and the grown base
`tests/data/grown_base/` (169 resources) with the tuning part of `tests/data/sets/grown.jsonl`
and `training-grown.jsonl`. The sealed parts are never read.

    .venv/bin/python scripts/calibrate_default.py [--data-dir DIR] [--output PATH]

Indexes are built (incrementally) under `--data-dir` (default: ./.eval-data), one per base
and precision.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from assistant.calibration import default_calibration_path  # noqa: E402
from assistant.cli import describe_calibration  # noqa: E402
from assistant.eval_data import load_questions, select  # noqa: E402
from assistant.fitting import calibrate  # noqa: E402
from assistant.service import Assistant  # noqa: E402
from assistant.settings import Settings  # noqa: E402

DATA = REPO / "tests" / "data"


def assistant_for(corpus: Path, data_dir: Path, name: str) -> Assistant:
    settings = Settings.from_env(
        corpus_dir=corpus, index_dir=data_dir / f"index-{name}", data_dir=data_dir
    )
    if settings.index_precision != "fp32":  # one index per precision, no rebuild when switching
        settings = settings.with_(index_dir=data_dir / f"index-{name}-{settings.index_precision}")
    assistant = Assistant(settings)
    report = assistant.build()
    print(f"{name}: {report.summary_line()}", file=sys.stderr)
    return assistant


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=REPO / ".eval-data")
    parser.add_argument(
        "--output",
        type=Path,
        default=default_calibration_path(Settings.from_env().index_precision),
    )
    args = parser.parse_args()

    bundled = assistant_for(REPO / "corpus" / "resources", args.data_dir, "bundled")
    grown = assistant_for(DATA / "grown_base", args.data_dir, "grown")
    bundled_questions = [
        *select(load_questions(DATA / "sets" / "bundled.jsonl"), split="tuning"),
        *load_questions(DATA / "sets" / "training-bundled.jsonl"),
        *load_questions(DATA / "eval_questions.jsonl"),
        *load_questions(DATA / "eval_heldout.jsonl"),
    ]
    grown_questions = [
        *select(load_questions(DATA / "sets" / "grown.jsonl"), split="tuning"),
        *load_questions(DATA / "sets" / "training-grown.jsonl"),
    ]
    calibration = calibrate(
        [("bundled", bundled, bundled_questions), ("grown", grown, grown_questions)]
    )
    calibration.save(args.output)
    print(f"written {args.output}")
    print(describe_calibration(calibration))
    return 0


if __name__ == "__main__":
    sys.exit(main())
