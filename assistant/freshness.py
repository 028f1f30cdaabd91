"""Freshness of resources: which ones staff should review, and changing a resource's status.

A resource's front matter may say `status: archived` (never cited), `status: superseded` with
`superseded_by: <id>` (replaced by its successor when both match), and `review_by: <date>`.
Answers citing a resource older than `ESS_ASSISTANT_STALE_YEARS` or past its `review_by`
carry a notice (`assistant.compose.freshness_notice`); this module lists those resources for
the staff tab and writes a status change back to the resource's file.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from corpus.errors import InvalidResourceError
from corpus.markdown_io import STATUSES, dump_front_matter, split_front_matter
from corpus.models import Resource
from corpus.text import normalize_newlines

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ToReview:
    id: str
    title: str
    date: str
    reason: str

    def as_list(self) -> list[str]:
        return [self.title, self.date, self.reason, self.id]


def past_review(resource: Resource, today: dt.date) -> bool:
    """Its `review_by` date has passed (compared on the date's own precision)."""
    due = resource.review_by
    return due is not None and due < today.isoformat()[: len(due)]


def too_old(resource: Resource, today: dt.date, stale_years: int) -> bool:
    """Its date is more than `stale_years` before `today` (on the date's own precision)."""
    limit = f"{today.year - stale_years:04d}{today.isoformat()[4:]}"
    date = resource.date
    return date is not None and date != "" and date < limit[: len(date)]


def resources_to_review(
    resources: Mapping[str, Resource], *, today: dt.date, stale_years: int
) -> list[ToReview]:
    """Resources past their `review_by`, older than `stale_years`, or superseded by a
    resource that is not in the base — most urgent first."""
    out: list[tuple[int, ToReview]] = []
    for r in resources.values():
        if r.status == "archived":
            continue
        if r.status == "superseded" and r.superseded_by not in resources:
            reason = f"remplacée par « {r.superseded_by} », absente de la base"
            out.append((0, ToReview(r.id, r.title, r.date or "", reason)))
        elif past_review(r, today):
            reason = f"à revoir depuis {r.review_by}"
            out.append((1, ToReview(r.id, r.title, r.date or "", reason)))
        elif too_old(r, today, stale_years) and r.status == "current":
            reason = f"datée de {(r.date or '')[:4]} (plus de {stale_years} ans)"
            out.append((2, ToReview(r.id, r.title, r.date or "", reason)))
    out.sort(key=lambda x: (x[0], x[1].date, x[1].id))
    return [item for _, item in out]


def set_status(
    path: Path, status: str, *, superseded_by: str | None = None, review_by: str | None = None
) -> None:
    """Write a new status (and successor, review date) into a Markdown resource's front
    matter, atomically; the other keys and the body are kept as they are."""
    if status not in STATUSES:
        raise InvalidResourceError(str(path), f"statut inconnu « {status} »")
    if status == "superseded" and not superseded_by:
        raise InvalidResourceError(str(path), "indiquez l'id de la ressource qui la remplace")
    if path.suffix.lower() not in (".md", ".markdown"):
        raise InvalidResourceError(
            str(path), "seul un fichier Markdown (.md) garde un statut : convertissez-le d'abord"
        )
    text = normalize_newlines(path.read_text(encoding="utf-8"))
    front, body = split_front_matter(text, str(path))
    if front is None:
        front, body = {}, text
    front = dict(front)
    for key in ("status", "superseded_by", "review_by"):
        front.pop(key, None)
    if status != "current":
        front["status"] = status
    if status == "superseded":
        front["superseded_by"] = superseded_by
    if review_by:
        front["review_by"] = review_by
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(dump_front_matter(front) + body, encoding="utf-8")
    os.replace(tmp, path)
    log.info("status of %s set to %s", path, status)


__all__ = ["ToReview", "resources_to_review", "set_status"]
