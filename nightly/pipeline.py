"""``run_nightly``: the nightly job as one safe run over the three stages' library functions.

1. lock ``DIR/.lock`` (another run holding it: ``LockHeld``, nothing done);
2. load the data once and count it; the data gate compares the counts with the last
   published run's (``GateRefused`` before any training; ``_data_gate``);
3. train and evaluate exactly as ``rec-train`` (:func:`run_training`), on that data;
4. refit on every rating (:func:`refit_on_all_ratings`) unless ``refit=False``;
5. export into ``DIR/models/VERSION/`` with the parity proof (:func:`run_export`);
6. gate against the model in service (``GateRefused``: kept as ``rejected-VERSION``);
7. score the catalog top-k, excluding every rating in the data (:func:`score_catalog`),
   and measure the lists' coverage and concentration (``_list_quality``);
8. publish by switching the ``current`` and ``latest.parquet`` links, then prune (with
   ``publish``: first load the table into the database, and switch its view together
   with the links, see ``nightly/_database.py``);
9. report into ``DIR/runs/VERSION.json``, whatever the outcome, then ``DIR/report.html``
   and the metrics file (``_outputs``).

Until step 7 nothing a reader uses is touched, so a failed, interrupted or killed run
leaves ``current`` and ``latest.parquet`` (and the database's view) exactly as they were.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from movierec.nightly._data_gate import DataCounts, decide_data, newest_rating_at
from movierec.nightly._gate import GateDecision, decide, holdout, read_service_metrics
from movierec.nightly._home import Home, signals_held
from movierec.nightly._lock import LockInfo, hold_lock
from movierec.nightly._outputs import write_run_outputs
from movierec.nightly._runs import PUBLISHED, last_with_status, read_run, read_runs
from movierec.nightly._runs import write_run_report as write_report
from movierec.nightly._stages import StageLog, process_peak_rss_mib
from movierec.nightly.config import NightlyConfig
from movierec.serve_batch import RuntimeOptions, ScoreConfig, ScoreJob, contract, score_catalog
from movierec.serve_batch.atomic import atomic_path
from movierec.serve_batch.cli_support import exit_code_of
from movierec.serve_batch.errors import ArtifactError, GateRefused, Interrupted

log = logging.getLogger(__name__)

#: Report format of ``DIR/runs/VERSION.json`` (bumped on incompatible changes).
REPORT_FORMAT = 1


@dataclass
class NightlyResult:
    """What a published run did: its version, report (as written) and summary line (what
    it did, without the version: the command's log lines start with that)."""

    version: str
    report: dict[str, Any]
    report_path: Path
    summary: str


def run_nightly(
    config: NightlyConfig,
    *,
    started: datetime | None = None,
    on_version: Callable[[str], None] | None = None,
) -> NightlyResult:
    """Run the nightly job of ``config`` (see the module docstring); return its result.

    Raises ``LockHeld`` (another run is going), ``GateRefused`` (the data gate refused
    tonight's data, or the candidate is worse than the model in service),
    ``Interrupted`` (SIGINT/SIGTERM; its ``untouched`` says what was left as it was) and
    the stages' own errors. Every run that took the lock writes its report, also when it
    fails. ``started``: the run's UTC start time (default: now), which names it;
    ``on_version``: called with the version once the lock is held (the CLI starts its
    log lines with it).
    """
    config.check()
    home = Home(config.home)
    home.create()
    started = started or datetime.now(UTC)
    with hold_lock(home.lock, started.isoformat(timespec="seconds")) as lock:
        version = home.new_version(started)
        if on_version is not None:
            on_version(version)
        return _Run(config, home, version, started).execute(lock)


class _Run:
    """One run: the steps in order, and the report they fill in."""

    def __init__(self, config: NightlyConfig, home: Home, version: str, started: datetime):
        self.config, self.home, self.version = config, home, version
        self.t0 = time.perf_counter()
        self.stages = StageLog()
        self.published = False
        self.exit_code: int | None = None
        self.counts = None  # tonight's data counts, once loaded
        self.previous = (home.in_service(), home.latest_table())
        self.database = _database_target(config)
        self.report: dict[str, Any] = {
            "format": REPORT_FORMAT,
            "version": version,
            "status": "running",
            "started_at": started.isoformat(timespec="seconds"),
            "home": str(home.root),
            "config": config.to_dict(),
            "in_service_before": {"model": self.previous[0], "recommendations": self.previous[1]},
        }

    def execute(self, lock: LockInfo) -> NightlyResult:
        home, version = self.home, self.version
        log.info("rec-nightly %s: home %s", version, home.root)
        swept = home.sweep_leftovers(running=version)
        if swept:
            self.report["swept_leftovers"] = swept
        work = home.work_dir(version)
        work.mkdir(parents=True)
        status = "failed"
        try:
            # recorded inside the try: from here on an interruption gets this run's report
            # and its own "left as they were" line
            lock.record(version=version)
            if self.database is not None:
                self.report["database"] = self.database.report
                self.database.check()
            data = self.load()
            self.data_gate()
            final, export_from = self.train(work, data)
            del data  # the split holds what scoring needs; the data frame can go
            self.export(final, export_from, work)
            # scoring runs the exported model: keep the ratings and names, free the network
            split, metrics, titles, columns = (
                final.split,
                final.metrics,
                final.titles,
                final.columns,
            )
            del final
            decision = self.gate(metrics)
            rows = self.score(work, split, columns)
            self.list_quality(split, titles)
            self.publish()
            status = "published"
            self.exit_code = 0
            summary = self.summary(decision, rows)
            self.report["summary"] = summary
        except GateRefused as exc:
            status = "refused"
            self.exit_code = exit_code_of(exc)
            raise
        except (Interrupted, KeyboardInterrupt) as exc:
            status = "interrupted"
            signum = exc.signum if isinstance(exc, Interrupted) else int(signal.SIGINT)
            self.exit_code = 128 + signum
            self.report["signal"] = signal.Signals(signum).name
            raise Interrupted(signum, self.untouched()) from None
        except BaseException as exc:
            self.exit_code = exit_code_of(exc)
            self.report["error"] = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            with signals_held():  # the cleanup and the report are seconds, and must finish
                if status in ("failed", "interrupted") and not self.published:
                    home.discard_candidate(version)
                shutil.rmtree(work, ignore_errors=True)
                self.finish_report(status)
                write_run_outputs(home, self.report, self.config.metrics_file)
        return NightlyResult(version, self.report, home.report(version), summary)

    # --- steps ------------------------------------------------------------------------
    def load(self):
        """Read the data once (training and the refit use this copy) and count it."""
        from movierec.train.data._columns import TIME
        from movierec.train.pipeline import load_data

        with self.stages.stage("load"):
            data = load_data(self.config.train.with_(data=self.config.data))
            times = data.ratings[TIME].to_numpy() if data.has_time else None
            counts = DataCounts(**data.counts(), newest_rating_at=newest_rating_at(times))
        self.report["data"] = {
            "path": str(data.path),
            "layout": data.layout,
            "fingerprint": data.fingerprint,
            **counts.to_dict(),
            "duplicates_dropped": data.duplicates_dropped,
            "columns": data.columns.to_dict(),
            "id_types": data.encoded[0].id_types,
        }
        self.counts = counts
        log.info(
            "data gate input: %d ratings, %d users, %d movies, newest rating %s",
            counts.ratings,
            counts.users,
            counts.movies,
            counts.newest_rating_at or "unknown (no rating times)",
        )
        return data

    def data_gate(self) -> None:
        """Refuse data that shrank or went stale, before any training (see _data_gate)."""
        cfg, home = self.config, self.home
        with self.stages.stage("data_gate"):
            runs = read_runs(home)
            decision = decide_data(
                self.counts,
                last_with_status(runs, PUBLISHED),
                read_run(home, self.previous[0]),
                max_drop=cfg.max_data_drop,
                force=cfg.force,
            )
            self.report["data_gate"] = {**decision.to_dict(), "max_data_drop": cfg.max_data_drop}
            if not decision.passed:
                model, _ = self.previous
                raise GateRefused(
                    f"{self.version} refused by the data gate: {decision.reason}; nothing was "
                    f"trained or published (still in service: {model}); --force trains on "
                    "it anyway"
                )
        log.info("data gate: %s (%s)", decision.decision, decision.reason)

    def train(self, work: Path, data):
        from movierec.train.pipeline import run_training, write_json
        from movierec.train.refit import refit_on_all_ratings

        cfg = self.config
        train_cfg = cfg.train.with_(
            data=cfg.data if cfg.data is not None else data.path,  # what was resolved
            artifacts=work / "evaluation",
            quiet=cfg.quiet,
        )
        with self.stages.stage("train"):
            # the evaluation's checkpoint stays in memory: nothing reads it from disk
            evaluated = run_training(
                train_cfg, data=data, write_checkpoint=False, release_data=True
            )
        ckpt = evaluated.checkpoint
        self.report["data"]["split"] = evaluated.metrics["split"]
        if not cfg.refit:
            self.stages.skip("refit", "--no-refit: the evaluated model is published")
            return ckpt, evaluated.artifacts
        with self.stages.stage("refit"):
            refit = refit_on_all_ratings(train_cfg, ckpt, data=data, start=cfg.refit_from)
            folder = work / "refit"
            folder.mkdir()
            write_json(folder / contract.METRICS_FILE, refit.metrics)
        del evaluated, ckpt  # the refit holds every rating and the holdout metrics
        return refit.checkpoint, folder

    def export(self, checkpoint, export_from: Path, work: Path) -> None:
        from movierec.export.config import ExportConfig
        from movierec.export.pipeline import run_export

        staging = self.home.staging_dir(self.version)
        with self.stages.stage("export"):
            config = ExportConfig(artifacts=export_from, output=staging, quiet=self.config.quiet)
            run_export(config, checkpoint)
            shutil.copy2(export_from / contract.METRICS_FILE, staging / contract.METRICS_FILE)
            curves = work / "evaluation" / contract.CURVES_FILE
            if curves.exists():
                shutil.copy2(curves, staging / contract.CURVES_FILE)

    def gate(self, metrics: dict[str, Any]) -> GateDecision:
        cfg, home, version = self.config, self.home, self.version
        candidate = holdout(metrics)
        service_version = self.previous[0]
        service = None
        with self.stages.stage("gate"):
            if service_version is not None:
                try:
                    service = holdout(read_service_metrics(home.model_dir(service_version)))
                    service["version"] = service_version
                except ArtifactError:
                    if not cfg.force:
                        raise
            decision = decide(
                candidate,
                service,
                max_rmse_increase=cfg.max_rmse_increase,
                max_ndcg_drop=cfg.max_ndcg_drop,
                force=cfg.force,
            )
            if cfg.force and service_version is not None and service is None:
                decision.decision = "forced"
                decision.reason = (
                    "--force published it without comparing (service metrics unreadable)"
                )
            self.report["metrics"] = {"candidate": candidate, "service": service}
            self.report["gate"] = {
                **decision.to_dict(),
                "max_rmse_increase": cfg.max_rmse_increase,
                "max_ndcg_drop": cfg.max_ndcg_drop,
            }
            staging = home.staging_dir(version)
            if not decision.publish:
                rejected = home.rejected_dir(version)
                os.rename(staging, rejected)
                self.report["model"] = {"version": version, "path": str(rejected)}
                raise GateRefused(
                    f"{version} refused by the quality gate: {decision.reason}; nothing was "
                    f"published (still in service: {service_version}), the candidate is kept "
                    f"in {rejected}"
                )
            os.rename(staging, home.model_dir(version))
            self.report["model"] = {"version": version, "path": str(home.model_dir(version))}
        log.info("gate: %s (%s)", decision.decision, decision.reason)
        return decision

    def score(self, work: Path, split, columns: dict | None) -> dict[str, Any]:
        cfg, home, version = self.config, self.home, self.version
        # the table's ID columns are named as the data's (customer_id, sku, ...)
        names = (
            (columns or {}).get("user", contract.USER_COL),
            (columns or {}).get("movie", contract.MOVIE_COL),
        )
        with self.stages.stage("score"):
            users = cfg.users or write_ids(
                work / "users.parquet",
                names[0],
                split.vocab.raw_users(np.arange(split.vocab.n_users)),
            )
            rated = write_all_ratings(work / "rated.parquet", split, names)
            score_config = ScoreConfig(
                job=ScoreJob(
                    input=users,
                    output=home.table(version),
                    artifacts=home.model_dir(version),
                    user_col=names[0],
                    movie_col=names[1],
                    all_movies=True,
                    exclude=rated,
                    top_k=cfg.top_k,
                    titles=cfg.titles,
                ),
                runtime=RuntimeOptions(quiet=cfg.quiet),
                ray=cfg.ray,
            )
            manifest = score_catalog(score_config)  # on the engine the configuration names
        rows = {
            "path": str(home.table(version)),
            "rows": manifest["rows_written"],
            "users": manifest["users"]["scored"],
            "top_k": cfg.top_k,
            "users_file": str(cfg.users) if cfg.users else "every user in the data",
            "excluded_pairs": (manifest.get("exclude") or {}).get("pairs_excluded"),
            "titles": cfg.titles,
            "engine": cfg.engine,
        }
        self.report["recommendations"] = rows
        return rows

    def list_quality(self, split, titles: dict[Any, str]) -> None:
        """Coverage and concentration of the table, and of the popularity baseline, into
        the run report and the version's ``metrics.json`` (see _list_quality)."""
        from movierec.nightly._list_quality import measure_lists

        cfg, home, version = self.config, self.home, self.version
        with self.stages.stage("list_quality"):
            figures, samples = measure_lists(
                home.table(version),
                split.vocab,
                split.every_rating(),
                cfg.top_k,
                titles=titles,
                seed=cfg.train.seed,
            )
            metrics_path = home.model_dir(version) / contract.METRICS_FILE
            metrics = json.loads(metrics_path.read_text())
            metrics["list_quality"] = figures
            with atomic_path(metrics_path) as tmp:
                tmp.write_text(json.dumps(metrics, indent=2) + "\n")
        self.report["list_quality"] = figures
        self.report["recommendations"]["samples"] = samples
        model, popular = figures["model"], figures["popularity"]
        log.info(
            "lists: coverage %.1f%% (popularity %.1f%%), the 1%% most-rated movies take "
            "%.1f%% of the slots (popularity %.1f%%), Gini %.3f (popularity %.3f)",
            100 * model["coverage"],
            100 * popular["coverage"],
            100 * model["top_1pct_share"],
            100 * popular["top_1pct_share"],
            model["gini"],
            popular["gini"],
        )

    def publish(self) -> None:
        home, version, database = self.home, self.version, self.database
        with contextlib.ExitStack() as loaded:
            switch_database = None
            if database is not None:
                with self.stages.stage("database"):
                    switch_database = loaded.enter_context(
                        database.staged(version, home.table(version), keep=home.versions())
                    )
            with self.stages.stage("publish"):
                with signals_held():  # the view and the links switch together
                    if switch_database is not None:
                        switch_database()
                    try:
                        home.publish(version)
                    except BaseException:
                        if database is not None:
                            database.undo(database.report.get("previous"))
                        raise
                    self.published = True
                self.report["pruned"] = home.prune(self.config.keep)
                if database is not None:
                    database.prune(home.versions())
        log.info("published %s: %s -> %s", version, home.current, version)

    # --- the report -------------------------------------------------------------------
    def untouched(self) -> str:
        home = self.home
        if self.published:
            return (
                f"{self.version} was already published ({home.current} and {home.latest} "
                "point to it); only pruning was cut short"
            )
        model, table = self.previous
        was = f" (still {model} and {table}.parquet)" if model else " (nothing published yet)"
        return f"{home.current} and {home.latest} were left as they were{was}"

    def finish_report(self, status: str) -> None:
        self.report["status"] = status
        self.report["exit_code"] = self.exit_code
        self.report["published"] = self.published
        self.report["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        self.report["wall_seconds"] = round(time.perf_counter() - self.t0, 3)
        self.stages.close()
        self.report["stages"] = self.stages.stages
        self.report["peak_rss_scope"] = self.stages.rss_scope
        self.report["process_peak_rss_mib"] = process_peak_rss_mib()
        if status == "interrupted":
            self.report["untouched"] = self.untouched()
        write_report(self.home.report(self.version), self.report)

    def summary(self, decision: GateDecision, rows: dict[str, Any]) -> str:
        m = self.report["metrics"]
        cand, serv = m["candidate"], m["service"]
        quality = f"test RMSE {cand['test_rmse']:.4f}, NDCG@10 {cand['test_ndcg@10']:.4f}"
        if serv is not None:
            quality += f" (in service: {serv['test_rmse']:.4f}, {serv['test_ndcg@10']:.4f})"
        wall = time.perf_counter() - self.t0
        lists = self.report["list_quality"]
        coverage = (
            f"coverage {lists['model']['coverage']:.1%} "
            f"(popularity {lists['popularity']['coverage']:.1%})"
        )
        return (
            f"published in {wall:.1f} s ({self.stages.walls()}); data gate "
            f"{self.report['data_gate']['decision']}; gate {decision.decision}: {quality}; "
            f"{rows['rows']} rows for {rows['users']} users, {coverage} -> {self.home.latest}"
            + self.database_summary()
        )

    def database_summary(self) -> str:
        if self.database is None:
            return ""
        db = self.database.report
        return f" and {db['target']} ({db['view']} -> {db['table']}, {db['seconds']:.1f} s)"


def _database_target(config: NightlyConfig):
    """The database of ``--publish`` (None without it; only then is movierec.db imported)."""
    if config.publish is None:
        return None
    from movierec.nightly._database import DatabaseTarget

    return DatabaseTarget(config.publish, config.publish_table)


def write_ids(path: Path, name: str, ids: pa.Array) -> Path:
    """A Parquet file of one ID column (scratch input of the scoring stage)."""
    pq.write_table(pa.table({name: ids}), path)
    return path


#: Rows per chunk of the rated-pairs file (bounded memory at tens of millions of ratings).
RATED_CHUNK_ROWS = 1 << 20


def write_all_ratings(
    path: Path, split, names: tuple[str, str] = (contract.USER_COL, contract.MOVIE_COL)
) -> Path:
    """Every rated (user, movie) pair of the data, as raw IDs under the data's column
    ``names``: what is never recommended. Written a chunk at a time, so memory does not
    grow with the ratings."""
    vocab = split.vocab
    writer = None
    try:
        for part in split.every_rating():
            for a in range(0, len(part), RATED_CHUNK_ROWS):
                b = a + RATED_CHUNK_ROWS
                users = vocab.raw_users(part.user_idx[a:b])
                movies = vocab.raw_movies(part.movie_idx[a:b])
                table = pa.table({names[0]: users, names[1]: movies})
                if writer is None:
                    writer = pq.ParquetWriter(path, table.schema)
                writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    return path
