"""Run the seed and ablation study, one row per (config, seed) in reports/experiments/results.csv.

Each run trains through doodle.model.train as the train stage does and is measured as the evaluate
stage measures (doodle.study.experiments). Rows are appended as runs finish, and a (config, seed) pair
already in the file is skipped, so the study can be stopped and resumed, or split between runners
(`--only`) writing to the same file.

    python scripts/experiments.py                          # the whole study (doodle.study.experiments.STUDY)
    python scripts/experiments.py --only default --seeds 5
    python scripts/experiments.py --config wide -S train.hidden_sizes=[1024,1024] --seeds 3
    python scripts/experiments.py --stop-at 16:05          # launch no run after 16:05 UTC
    python scripts/experiments.py --remeasure --only default   # measure kept models again, no training

The same runs through DVC experiments, with the same keys (`+train.seed` adds a key to the train
section that overrides base.seed for training alone, so the data split and the benchmarks stay put):

    dvc exp run --queue -S +train.seed=20261124 -S train.augment=false
    dvc exp run --run-all && dvc exp show

Experiment refs stay local to a clone: the committed figures are the runner's CSV.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

from doodle.model import model_io
from doodle.study import experiments, study_results


def _stop_time(text: str | None) -> datetime | None:
    if not text:
        return None
    hours, minutes = (int(part) for part in text.split(":"))
    now = datetime.now(UTC)
    return now.replace(hour=hours, minute=minutes, second=0, microsecond=0)


def remeasure(args: argparse.Namespace, base_seed: int) -> int:
    """Measure again the kept model of every row of the results file (those of ``--only`` and
    ``--pick``), print each figure that changed, and rewrite the file when any did."""
    rows = study_results.read_rows(args.results)
    chosen = []
    for index, row in enumerate(rows):
        if (args.only and row["config"] not in args.only) or (
            args.pick is not None and int(row["seed"]) - base_seed not in args.pick
        ):
            continue
        if (args.keep_models / f"{row['config']}-{row['seed']}").is_dir():
            chosen.append(index)
        else:
            print(
                f"{row['config']} seed {row['seed']}: no kept model in {args.keep_models}, row left as it is",
                flush=True,
            )
    print(f"{len(chosen)} kept models to measure again ({len(rows)} rows in {args.results})", flush=True)
    if not chosen:
        return 0
    bench = experiments.load_benchmarks(args.prepared_dir, args.params)
    changed = 0
    for index in chosen:
        row = rows[index]
        started = time.perf_counter()
        try:
            model = model_io.load_model(args.keep_models / f"{row['config']}-{row['seed']}")
        except model_io.ModelFileError as error:
            print(f"{row['config']} seed {row['seed']}: {error}; row left as it is", flush=True)
            continue
        rows[index] = experiments.remeasured(row, model, bench)
        differences = [column for column in study_results.COLUMNS if rows[index][column] != row[column]]
        for column in differences:
            before, after = row[column], rows[index][column]
            if column == "test_wrong":  # only the images that left or joined the list
                before, after = (
                    " ".join(sorted(set(a.split()) - set(b.split()), key=int)) or "-"
                    for a, b in ((before, after), (after, before))
                )
            print(f"  {column}: {before} -> {after}", flush=True)
        print(
            f"{row['config']} seed {row['seed']}: {len(differences) or 'no'} figures changed "
            f"({time.perf_counter() - started:.1f} s)",
            flush=True,
        )
        changed += bool(differences)
    if changed:
        study_results.write_rows(args.results, rows)
        print(f"{changed} rows changed: {args.results} rewritten", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=study_results.DEFAULT_RESULTS)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--prepared-dir", type=Path, default=Path("data/prepared"))
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", help="configs of the study to run (default: all)"
    )
    parser.add_argument("--config", help="name of a config given by -S instead of the study's")
    parser.add_argument(
        "-S", "--set", dest="settings", action="append", default=[], metavar="train.KEY=VALUE"
    )
    parser.add_argument("--seeds", type=int, help="seeds per config (default: 5 for default, 3 otherwise)")
    parser.add_argument(
        "--pick",
        type=int,
        nargs="+",
        metavar="K",
        help="run only these positions in each config's seed list (0 = base.seed), e.g. to split seeds between runners",
    )
    parser.add_argument("--stop-at", metavar="HH:MM", help="UTC time after which no new run starts")
    parser.add_argument(
        "--keep-models",
        type=Path,
        default=Path(".cache/study-models"),
        help="folder keeping each run's model, to measure it again later (ignored by git)",
    )
    parser.add_argument(
        "--remeasure",
        action="store_true",
        help="train nothing: measure the kept models of the file's rows again and update their figures",
    )
    args = parser.parse_args(argv)

    if args.remeasure:
        if args.config or args.settings:
            parser.error("--remeasure measures the file's rows: no --config or -S")
        base_seed = int(yaml.safe_load(args.params.read_text())["base"]["seed"])
        return remeasure(args, base_seed)

    if args.config:
        plan = {args.config: experiments.parse_settings(args.settings)}
    else:
        if args.settings:
            parser.error("-S needs --config NAME")
        unknown = sorted(set(args.only or ()) - set(experiments.STUDY))
        if unknown:
            parser.error(f"not in the study: {', '.join(unknown)}")
        plan = {
            name: overrides
            for name, overrides in experiments.STUDY.items()
            if not args.only or name in args.only
        }
    base_seed = int(yaml.safe_load(args.params.read_text())["base"]["seed"])
    stop = _stop_time(args.stop_at)
    finished = study_results.done(args.results)
    # Seed by seed across the configs, so a study cut short has every config at as many seeds as it could.
    runs = [
        (position, name, overrides, seed)
        for name, overrides in plan.items()
        for position, seed in enumerate(
            experiments.study_seeds(
                base_seed,
                args.seeds
                or (experiments.DEFAULT_SEED_COUNT if name == "default" else experiments.ABLATION_SEED_COUNT),
            )
        )
    ]
    queue = [
        (name, overrides, seed)
        for position, name, overrides, seed in sorted(runs, key=lambda run: run[0])
        if (name, seed) not in finished and (args.pick is None or position in args.pick)
    ]
    print(f"{len(queue)} runs to do ({len(finished)} already in {args.results})", flush=True)
    if not queue:
        return 0
    bench = experiments.load_benchmarks(args.prepared_dir, args.params)
    for name, overrides, seed in queue:
        if stop and datetime.now(UTC) >= stop:
            print(f"stopping: it is past {args.stop_at} UTC", flush=True)
            break
        if (name, seed) in study_results.done(args.results):  # another runner on the same file did it
            continue
        row = experiments.run_one(name, overrides, seed, bench, args.params, keep_models=args.keep_models)
        study_results.append_row(args.results, row)
        print(
            f"{name} seed {seed}: val {row['val_accuracy']:.4f} test {row['test_accuracy']:.4f} "
            f"ece {row['ece']:.4f} doodle {row['doodle_accuracy']:.4f} stroke {row['stroke_accuracy']:.4f} "
            f"({row['seconds']:.0f} s)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
