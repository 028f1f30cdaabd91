"""The `ess-assistant` command line (also `python -m assistant`)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from assistant.feedback import log_answer
from assistant.models import Answer, Filters
from assistant.service import Assistant
from assistant.settings import Settings
from corpus.errors import AssistantError, ConfigurationError, InvalidQuestionError

log = logging.getLogger(__name__)

BUILT_WITH_ERRORS = 6  # exit code of a build that indexed the rest but listed files in error


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--index", type=Path, help="dossier de l'index (ESS_ASSISTANT_INDEX_DIR)")
    common.add_argument("--corpus", type=Path, help="dossier du corpus (ESS_ASSISTANT_CORPUS_DIR)")
    common.add_argument("--model", help="modèle d'embedding : nom ou chemin (ESS_ASSISTANT_MODEL)")
    common.add_argument("--data-dir", type=Path, help="dossier de données (ESS_ASSISTANT_DATA_DIR)")
    common.add_argument("-v", "--verbose", action="store_true", help="journal détaillé")

    parser = argparse.ArgumentParser(
        prog="ess-assistant",
        description="Assistant de questions-réponses sur les ressources ESS du réseau.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    build = sub.add_parser("build", parents=[common], help="construire ou mettre à jour l'index")
    build.add_argument("--full", action="store_true", help="tout recalculer")
    build.add_argument(
        "--allow-empty",
        action="store_true",
        help="autoriser une reconstruction qui retire la plupart des ressources (ou toutes)",
    )

    ask = sub.add_parser("ask", parents=[common], help="poser une question")
    ask.add_argument("question", help="la question, ou - pour lire une question par ligne")
    ask.add_argument("--json", action="store_true", help="sortie JSON (une ligne par question)")
    ask.add_argument(
        "--log", action="store_true", help="enregistrer les questions dans le journal (revue)"
    )
    ask.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="CLÉ=VALEUR",
        help="type=…, theme=…, zone=…, date>=AAAA, date<=AAAA (répétable)",
    )

    serve = sub.add_parser("serve", parents=[common], help="lancer le chat Gradio")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)

    sub.add_parser("status", parents=[common], help="état de l'index et du corpus")

    evaluate = sub.add_parser(
        "eval", parents=[common], help="évaluer la recherche sur un jeu de questions"
    )
    evaluate.add_argument("file", type=Path, help="fichier JSONL de questions")
    evaluate.add_argument(
        "--method", choices=["lexical", "dense", "hybrid", "all"], default="hybrid"
    )
    evaluate.add_argument(
        "--summary",
        action="store_true",
        help="seulement les métriques, sans le tableau par question",
    )
    evaluate.add_argument(
        "--split",
        choices=["tuning", "sealed", "all"],
        default="all",
        help="partie du jeu à évaluer (défaut : tout)",
    )
    evaluate.add_argument(
        "--style", action="append", default=[], help="seulement ce style de question (répétable)"
    )
    evaluate.add_argument(
        "--output", type=Path, help="écrire le résultat de chaque question (JSONL) dans ce fichier"
    )

    review = sub.add_parser(
        "review", parents=[common], help="revue des questions : 👎, sans réponse, incertaines"
    )
    review_sub = review.add_subparsers(dest="action", required=True)
    r_list = review_sub.add_parser(
        "list", help="les questions à revoir, les plus anciennes d'abord"
    )
    r_list.add_argument("--json", action="store_true")
    r_label = review_sub.add_parser("label", help="dire quelles ressources répondent")
    r_label.add_argument("id", type=int)
    r_label.add_argument("--resource", action="append", default=[], metavar="ID")
    r_label.add_argument("--out-of-scope", action="store_true", help="hors du champ du réseau")
    r_label.add_argument("--fact", help="le fait que la réponse doit contenir")
    r_dismiss = review_sub.add_parser("dismiss", help="écarter une question")
    r_dismiss.add_argument("id", type=int)
    r_export = review_sub.add_parser("export", help="les cas étiquetés, au format d'évaluation")
    r_export.add_argument("file", type=Path)

    gaps = sub.add_parser(
        "gaps", parents=[common], help="lacunes : questions sans bonne réponse, groupées par sens"
    )
    gaps.add_argument("--json", action="store_true")
    gaps.add_argument("--since", metavar="AAAA-MM-JJ", help="depuis cette date")

    sync = sub.add_parser(
        "sync", parents=[common], help="synchroniser le corpus avec le site du réseau"
    )
    sync.add_argument(
        "url", nargs="?", help="plan du site (sitemap) ou page de liste (ESS_ASSISTANT_SITE_URL)"
    )
    sync.add_argument("--include", metavar="REGEX", help="seulement les adresses qui y répondent")
    sync.add_argument("--exclude", metavar="REGEX", help="sauf les adresses qui y répondent")
    sync.add_argument("--pdf", action="store_true", help="aussi les PDF liés, sur le même site")
    sync.add_argument("--dry-run", action="store_true", help="dire ce qui changerait, sans écrire")
    sync.add_argument("--build", action="store_true", help="reconstruire l'index ensuite")

    calibrate = sub.add_parser(
        "calibrate",
        parents=[common],
        help="ajuster la fusion, les citations et l'abstention sur une base et un jeu de questions",
    )
    calibrate.add_argument("file", type=Path, help="fichier JSONL de questions jugées")
    calibrate.add_argument(
        "--split",
        choices=["tuning", "all"],
        default="tuning",
        help="questions utilisées (défaut : la partie tuning ; «all» si le jeu n'a pas de split)",
    )
    calibrate.add_argument(
        "--output", type=Path, help="fichier écrit (défaut : <index>/calibration.json)"
    )

    imp = sub.add_parser(
        "import", parents=[common], help="importer un export de pages en fichiers Markdown"
    )
    imp.add_argument("export", type=Path, help="fichier texte exporté du site")
    imp.add_argument("--out", type=Path, help="dossier de sortie (défaut : le corpus)")
    imp.add_argument("--overwrite", action="store_true", help="remplacer les fichiers existants")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        index_dir=getattr(args, "index", None),
        corpus_dir=getattr(args, "corpus", None),
        model=getattr(args, "model", None),
        data_dir=getattr(args, "data_dir", None),
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
    )


class _TqdmProgress:
    """A `ProgressCallback` drawing tqdm bars on stderr, one per stage."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self._bar: Any = None
        self._stage = ""

    def __call__(self, done: int, total: int, stage: str) -> None:
        if stage != self._stage:
            self.close()
            self._stage = stage
            if total <= 1:  # a one-step stage: a line, not a bar
                if done < total:
                    print(f"{stage}…", file=sys.stderr, flush=True)
                return
            self._bar = self._tqdm(total=total, desc=stage, unit="passage", file=sys.stderr)
        if self._bar is not None:
            self._bar.total = total
            self._bar.n = done
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _ensure_index(assistant: Assistant) -> None:
    progress = _TqdmProgress()
    try:
        assistant.ensure_index(progress=progress)
    finally:
        progress.close()


def _format_answer(answer: Answer) -> str:
    lines = [*(f"⚠ {n}" for n in answer.notices), answer.text]
    if answer.citations:
        lines.append("")
        lines.append("Sources :")
        for c in answer.citations:
            meta = " · ".join(x for x in (c.kind or c.type, c.date or "", c.url or "") if x)
            lines.append(f"[{c.n}] {c.title}" + (f" — {meta}" if meta else ""))
            lines.append("    « " + " ".join(c.passage.split()) + " »")
    return "\n".join(lines)


def lower_priority(increment: int) -> None:
    """Run this process at a lower CPU priority (`nice`): builds and syncs are batch work, and
    a chat on the same cores answers first (where the system allows it)."""
    if increment and hasattr(os, "nice"):
        try:
            os.nice(increment)
        except OSError as exc:  # not permitted here: run at the normal priority
            log.debug("could not lower the priority: %s", exc)


def cmd_build(args: argparse.Namespace) -> int:
    assistant = Assistant(_settings(args))
    lower_priority(assistant.settings.build_nice)
    progress = _TqdmProgress()
    try:
        report = assistant.build(full=args.full, progress=progress, allow_removals=args.allow_empty)
    finally:
        progress.close()
    if report.reason:
        print(f"({report.reason})")
    print(report.summary_line())
    for err in report.errors:
        print(f"  erreur : {err.path} : {err.reason}")
    return BUILT_WITH_ERRORS if report.errors else 0


def cmd_ask(args: argparse.Namespace) -> int:
    assistant = Assistant(_settings(args))
    filters = Filters.parse(args.filter) if args.filter else None
    _ensure_index(assistant)
    log = _store(assistant) if args.log else None
    if args.question == "-":
        return _ask_stream(assistant, filters, as_json=args.json, log=log)
    answer = assistant.ask(args.question, filters=filters)
    if log is not None:
        log_answer(log, answer)
    print(json.dumps(answer.to_json(), ensure_ascii=False) if args.json else _format_answer(answer))
    return 0


def _ask_stream(
    assistant: Assistant, filters: Filters | None, *, as_json: bool, log: Any = None
) -> int:
    """One question per line on stdin; one answer (a JSON line with --json) per question.

    A line may also be a JSON object `{"question": …, "history": […], "filters": {…}}` (a
    conversation turn). A line that cannot be used gets an error (a JSON object with `error`)
    on its own output line, and the batch goes on; the exit code is then 2.
    """
    status = 0
    for line in _stdin_lines():
        raw = line.rstrip("\r\n")
        if not raw.strip():
            continue
        question = raw
        try:
            question, history, line_filters = parse_request_line(raw)
            answer = assistant.ask(
                question, history=history, filters=line_filters if line_filters else filters
            )
            if log is not None:
                log_answer(log, answer)
        except (InvalidQuestionError, ConfigurationError) as exc:
            status = exc.exit_code
            out: Any = {"question": question, "error": str(exc)}
            print(json.dumps(out, ensure_ascii=False) if as_json else str(exc), flush=True)
            continue
        print(
            json.dumps(answer.to_json(), ensure_ascii=False)
            if as_json
            else _format_answer(answer) + "\n",
            flush=True,
        )
    return status


def _stdin_lines() -> Any:
    """Lines of stdin as text; bytes that are not UTF-8 become U+FFFD (the batch goes on)."""
    raw = getattr(sys.stdin, "buffer", None)
    if raw is None:  # a text stream (tests)
        return iter(sys.stdin)
    return (line.decode("utf-8", "replace") for line in raw)


def parse_request_line(line: str) -> tuple[str, tuple[str, ...], Filters | None]:
    """(question, history, filters) of a stdin line: plain text is the question; a line that
    starts with «{» is a JSON object with `question`, optional `history` (earlier questions,
    oldest first) and `filters` ({"type": "Guide", "theme": […], "zone": …, "date>=": "2020",
    "date<=": …})."""
    if not line.lstrip().startswith("{"):
        return line, (), None
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise InvalidQuestionError(f"ligne JSON invalide : {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("question"), str):
        raise InvalidQuestionError("objet JSON sans « question » (texte)")
    history = data.get("history") or []
    if not isinstance(history, list) or not all(isinstance(h, str) for h in history):
        raise InvalidQuestionError("« history » doit être une liste de questions (textes)")
    raw_filters = data.get("filters") or {}
    if not isinstance(raw_filters, dict):
        raise InvalidQuestionError('« filters » doit être un objet, par ex. {"type": "Guide"}')
    specs: list[str] = []
    for key, value in raw_filters.items():
        values = value if isinstance(value, list) else [value]
        for v in values:
            if not isinstance(v, str | int):
                raise InvalidQuestionError(f"filtre « {key} » : valeur invalide {v!r}")
            op = "" if key.endswith(("=", ">", "<")) else "="
            specs.append(f"{key}{op}{v}")
    return data["question"], tuple(history), Filters.parse(specs) if specs else None


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    assistant = Assistant(settings, query_threads=settings.serve_threads)
    _ensure_index(assistant)  # a first build, if any, uses every core
    _store(assistant)  # apply the log retention at start
    assistant.warm_up_in_background()
    from ui.app import serve  # gradio's import (≈ 3 s) overlaps the model's loading

    serve(assistant)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    assistant = Assistant(_settings(args))
    status = assistant.status()
    print(f"index       : {status.index_dir}")
    print(f"corpus      : {status.corpus_dir}")
    if status.version is None:
        print("état        : aucun index — lancez `ess-assistant build`")
        return 0
    print(f"version     : {status.version}")
    print(f"modèle      : {status.model} ({status.precision})")
    print(f"ressources  : {status.resources}")
    print(f"passages    : {status.chunks} ({status.index_type})")
    print(f"construit   : {status.built_at}")
    print(f"erreurs     : {len(status.errors)}")
    for path, reason in status.errors:
        print(f"  {path} : {reason}")
    _print_calibration(assistant)
    return 0


def _print_calibration(assistant: Assistant, *, file: Any = None) -> None:
    """Which calibration is in use, and a warning when it was fitted elsewhere."""
    calibration = assistant.calibration
    print(f"calibration : {calibration.source} (ajustée le {calibration.created_at})", file=file)
    for warning in assistant.calibration_warnings():
        print(f"  ⚠ {warning}", file=file)


def cmd_eval(args: argparse.Namespace) -> int:
    from assistant.evaluation import run_eval_command

    assistant = Assistant(_settings(args))
    _ensure_index(assistant)
    _print_calibration(assistant)
    print(
        run_eval_command(
            assistant,
            args.file,
            method=args.method,
            details=not args.summary,
            split=args.split,
            styles=args.style,
            output=args.output,
        )
    )
    return 0


def _print_json_lines(items: Sequence[Any]) -> int:
    """One JSON object per line (each item's `to_json()`); the command's exit code."""
    for item in items:
        print(json.dumps(item.to_json(), ensure_ascii=False))
    return 0


def _store(assistant: Assistant) -> Any:
    """The question log, purged of what is older than the retention setting."""
    from assistant.feedback import FeedbackStore

    store = FeedbackStore(assistant.settings.feedback_db)
    store.purge(assistant.settings.log_days)
    return store


def cmd_review(args: argparse.Namespace) -> int:
    from assistant import review

    assistant = Assistant(_settings(args))
    store = _store(assistant)
    if args.action == "list":
        items = review.queue(store)
        if args.json:
            return _print_json_lines(items)
        if not items:
            print("Aucune question à revoir.")
        for item in items:
            sources = ", ".join(str(c.get("resource_id")) for c in item.citations) or "aucune"
            print(f"#{item.id}  {item.created_at[:10]}  ({item.why})  {item.question}")
            print(f"      réponse : {' '.join(item.answer.split())[:160]}")
            print(
                f"      sources : {sources}" + (f" ; avis : {item.comment}" if item.comment else "")
            )
        return 0
    if args.action == "label":
        known = list(assistant.index().resources) if args.resource else None
        item = review.label(
            store,
            args.id,
            resources=args.resource,
            out_of_scope=args.out_of_scope,
            fact=args.fact,
            known=known,
        )
        print(f"#{item.id} étiquetée.")
        return 0
    if args.action == "dismiss":
        review.dismiss(store, args.id)
        print(f"#{args.id} écartée.")
        return 0
    count = review.export_cases(store, args.file)
    print(f"{count} cas écrits dans {args.file} (ess-assistant eval {args.file})")
    return 0


def cmd_gaps(args: argparse.Namespace) -> int:
    from assistant.gaps import find_gaps
    from assistant.models import valid_date

    if args.since and not valid_date(args.since):
        raise ConfigurationError(f"date invalide « {args.since} » : AAAA, AAAA-MM ou AAAA-MM-JJ")
    assistant = Assistant(_settings(args))
    gaps = find_gaps(assistant, _store(assistant), since=args.since)
    if args.json:
        return _print_json_lines(gaps)
    if not gaps:
        print("Aucune lacune : toutes les questions ont reçu une réponse.")
    for gap in gaps:
        print(f"{gap.count:>4} × {gap.question}   ({gap.first[:10]} → {gap.last[:10]})")
        for variant in gap.variants:
            print(f"        · {variant}")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    assistant = Assistant(_settings(args))
    lower_priority(assistant.settings.build_nice)
    progress = _TqdmProgress()
    try:
        report = assistant.sync(
            args.url,
            include=args.include,
            exclude=args.exclude,
            pdf=args.pdf,
            dry_run=args.dry_run,
            progress=progress,
        )
    finally:
        progress.close()
    print(("(essai : rien n'est écrit) " if args.dry_run else "") + report.summary_line())
    for err in report.errors:
        print(f"  erreur : {err.url} : {err.reason}")
    if args.build and not args.dry_run:
        args.full = args.allow_empty = False
        return cmd_build(args)
    return BUILT_WITH_ERRORS if report.errors else 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from assistant.calibration import FILE_NAME
    from assistant.eval_data import load_questions, select
    from assistant.fitting import calibrate

    assistant = Assistant(_settings(args))
    _ensure_index(assistant)
    questions = load_questions(args.file)
    chosen = select(questions, split=args.split)
    if not chosen and args.split == "tuning":
        chosen = questions  # a set without a split (e.g. a review export): all of it
    if len(chosen) < 20:
        raise ConfigurationError(
            f"{len(chosen)} questions : il en faut au moins 20, dont des questions sans réponse "
            "dans la base, pour ajuster la calibration"
        )
    progress = _TqdmProgress()
    try:
        calibration = calibrate([("base", assistant, chosen)], progress=progress)
    finally:
        progress.close()
    out = args.output or assistant.index_dir / FILE_NAME
    calibration.save(out)
    print(f"calibration écrite dans {out}")
    print(describe_calibration(calibration))
    return 0


def describe_calibration(calibration: Any) -> str:
    """The cross-validated figures of a calibration, one line per fitted part."""
    cv = calibration.cv
    lines = [f"modèle : {calibration.model} ; ajustée le {calibration.created_at}"]
    for base in calibration.fitted_on:
        lines.append(
            f"  base « {base.get('name')} » : {base.get('resources')} ressources, "
            f"{base.get('questions')} questions (empreinte {base.get('fingerprint')})"
        )
    if "domain" in cv:
        d = cv["domain"]
        lines.append(
            f"filtre de domaine : précision VC {d['cv_accuracy']:.3f}, hors domaine refusées "
            f"{d['out_of_domain_refused']:.1%}, dans le domaine refusées {d['in_domain_refused']:.1%}"
        )
    if "fusion" in cv:
        f = cv["fusion"]
        lines.append(
            f"fusion : poids lexical {calibration.lexical_weight} (MRR {f['score']:.3f}, VC {f['cv_score']:.3f})"
        )
    for kind, label, value in (
        ("shift", "changement de sujet", calibration.context_weight),
        ("reference", "renvoi à la réponse", calibration.reference_weight),
    ):
        f = cv.get("context", {}).get(kind, {})
        if f.get("score") is not None:
            lines.append(
                f"relances ({label}) : poids de la question précédente {value} "
                f"(MRR {f['score']:.3f}, VC {f['cv_score']:.3f}, {f['questions']} questions)"
            )
    if "abstention" in cv:
        a = cv["abstention"]
        lines.append(
            f"abstention : AUC VC {a['cv_auc']:.3f} ; avec réponse abstenues {a['cv_answerable_abstained']:.1%}, "
            f"sans réponse abstenues {a['cv_unanswerable_abstained']:.1%}, "
            f"sans réponse répondues avec confiance {a['cv_unanswerable_confident']:.1%}"
        )
    if "citations" in cv:
        c = cv["citations"]
        lines.append(
            f"citations : ratio {calibration.citation_ratio} ({c['metric']} {c['score']:.3f}, "
            f"VC {c['cv_score']:.3f})"
        )
    return "\n".join(lines)


def cmd_import(args: argparse.Namespace) -> int:
    from corpus.importer import import_export

    settings = _settings(args)
    out = args.out or settings.corpus_dir
    if out is None:
        from corpus.bundled import bundled_corpus_dir

        out = bundled_corpus_dir()
    result = import_export(args.export, out, overwrite=args.overwrite)
    print(result if isinstance(result, str) else _describe_import(result, out))
    return 0


def _describe_import(result: Any, out: Path) -> str:
    written = getattr(result, "written", result)
    skipped = getattr(result, "skipped", ())
    lines = [f"{len(written)} fichier(s) écrit(s) dans {out}"]
    lines += [f"  ignoré (existe déjà, --overwrite pour remplacer) : {p}" for p in skipped]
    return "\n".join(lines)


COMMANDS = {
    "build": cmd_build,
    "ask": cmd_ask,
    "serve": cmd_serve,
    "status": cmd_status,
    "eval": cmd_eval,
    "import": cmd_import,
    "calibrate": cmd_calibrate,
    "sync": cmd_sync,
    "review": cmd_review,
    "gaps": cmd_gaps,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return COMMANDS[args.command](args)
    except AssistantError as exc:
        print(f"erreur : {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrompu", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
