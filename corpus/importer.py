"""Turn the network's page export into one Markdown file per resource."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from corpus.export_parser import parse_export
from corpus.loaders import read_text
from corpus.markdown_io import resource_to_markdown

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportResult:
    """Files written by `import_export`, and existing files left untouched."""

    written: tuple[Path, ...]
    skipped: tuple[Path, ...]


def import_export(export_path: Path, out_dir: Path, *, overwrite: bool = False) -> ImportResult:
    """Parse the export at `export_path` and write `<out_dir>/<id>.md` for each resource.

    An existing file is kept (listed in `skipped`) unless `overwrite` is true, so hand edits
    made by the staff survive a re-import. Raises `InvalidResourceError` for a bad export.
    """
    export_path, out_dir = Path(export_path), Path(out_dir)
    resources = parse_export(read_text(export_path), source=str(export_path))
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    skipped: list[Path] = []
    for resource in resources:
        target = out_dir / f"{resource.id}.md"
        if target.exists() and not overwrite:
            logger.info("kept existing %s", target)
            skipped.append(target)
            continue
        target.write_text(resource_to_markdown(resource), encoding="utf-8", newline="\n")
        logger.info("wrote %s", target)
        written.append(target)
    return ImportResult(tuple(written), tuple(skipped))
