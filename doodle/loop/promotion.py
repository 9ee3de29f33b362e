"""The promotion rule and the one way a model reaches ``models/``, the folder that is served.

A *candidate* (``data/candidate/`` from the train stage, or the long run's model) is measured with the
served model (the *champion*, ``models/``) on the same images, and `decide` applies one rule:

    retraining (the candidate was trained with the champion's configuration):
        val(candidate) >= val(champion) - max_val_drop
    challenger (another configuration, or a model that does not say how it was trained):
        val(candidate) - val(champion) > champion_margin
    both:
        holdout(candidate) >= holdout(champion)                      (feedback holdout; no rows: passes)
        real writers: candidate - champion not below 0 beyond noise  (writers the candidate never saw)

*Validation* is MNIST's 5,000 validation images. *Real writers* are the real pen digits
(`doodle.sources.pendigits`) of the writer fold the candidate held out, drawn at the pad's pen, since reading
people is what the app is for: both models read the same digits, and the candidate fails when the 95 %
interval of the difference, clustered by writer (`compare_on_writers`), lies wholly below zero. The
generated pen-stroke benchmark is still measured and reported, but gates nothing: training draws from
the same generator, so it tells how well the model learned its generator, not how it reads a person.

``max_val_drop`` (params.yaml ``promote.max_val_drop``, 0.3 points) is a noise margin for a
retraining: on 5,000 images an accuracy near 99 % has a binomial standard error of 0.14 points, and
two runs of one configuration land about that far apart, so a drop of up to about two standard
errors is not evidence of a worse model. A configuration change must show more than noise: its
validation gain must exceed the seed study's ``champion_margin``. The two margins come from the seed
study's committed runs (``reports/experiments/results.csv``, `doodle.study.study_results.read_study`): two
standard deviations over seeds of the default configuration's validation accuracy and of its
pen-stroke accuracy. The feedback holdout has no margin: new models must not read fewer of people's
corrected drawings right.

The configuration is `configuration_of` a model's ``mlp.json``: its ``hyperparameters`` without the
seed, and its ``layer_sizes``. A model without recorded hyper-parameters (saved outside the train
stage) has none and is judged as a challenger: an unknown configuration must show a gain.

`install_model` copies the candidate's two files into ``models/`` with an atomic rename each,
weights first; a server polling the folder (`doodle.loop.model_watch`) loads them only once both
have settled and the checksum matches, so it never serves a half-written model.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from doodle.model import path_io
from doodle.model.model_io import METADATA_NAME, WEIGHTS_NAME, Model, atomic_write, load_model
from doodle.study import stats

DEFAULT_MAX_VAL_DROP = 0.003

FIRST = "first champion"
SAME = "same weights"
RETRAINING = "retraining"
CHALLENGER = "challenger"

# Hyper-parameters that do not make another configuration: the seed only moves a run within the
# configuration's seed-to-seed noise.
NOT_CONFIGURATION = ("seed",)


def configuration_of(metadata: Mapping[str, Any]) -> str | None:
    """The fingerprint of the training configuration an ``mlp.json`` records: the SHA-256 (first 12
    hex digits) of its ``hyperparameters`` without `NOT_CONFIGURATION` and its ``layer_sizes``, as
    canonical JSON; None when the file records no hyper-parameters."""
    hyperparameters = metadata.get("hyperparameters")
    if not isinstance(hyperparameters, Mapping) or not hyperparameters:
        return None
    recorded = {
        "hyperparameters": {
            key: value for key, value in hyperparameters.items() if key not in NOT_CONFIGURATION
        },
        "layer_sizes": metadata.get("layer_sizes"),
    }
    return hashlib.sha256(json.dumps(recorded, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class StudyMargins:
    """The seed study's two margins (accuracy fractions) and where they come from."""

    champion_margin: float  # validation gain a challenger must exceed
    stroke_margin: float  # how far below the champion a new model may read the pen-stroke benchmark
    seeds: int  # runs of the default configuration behind them
    source: str  # the results CSV

    @classmethod
    def of(cls, study: Any) -> StudyMargins:
        """From a `doodle.study.study_results.SeedStudy` (its ``champion_margin``, ``stroke_margin``,
        ``seeds``, ``source``); its errors (too few seeds) pass through."""
        return cls(
            float(study.champion_margin), float(study.stroke_margin), int(study.seeds), str(study.source)
        )

    def __post_init__(self) -> None:
        for name in ("champion_margin", "stroke_margin"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (
                isinstance(value, (int, float)) and math.isfinite(value) and value >= 0
            ):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r} ({self.source})")


@dataclass(frozen=True)
class Scores:
    """A model's figures on the promotion sets; ``holdout_accuracy`` is None without rows,
    ``configuration`` None when its ``mlp.json`` records no training configuration."""

    version: str
    val_accuracy: float
    holdout_accuracy: float | None
    stroke_accuracy: float
    configuration: str | None = None
    path_version: str | None = None  # the path model's version; None for a pixel-only model


@dataclass(frozen=True)
class WriterComparison:
    """Candidate and champion on the same real digits of writers the candidate never saw."""

    writers: tuple[int, ...]
    digits: int
    candidate_accuracy: float
    champion_accuracy: float
    difference: stats.Interval  # candidate - champion, 95 % interval clustered by writer
    champion_saw_them: bool  # the champion trained on some of these writers (its figure is flattered)


def compare_on_writers(
    candidate: Model, champion: Model, images: np.ndarray, labels: np.ndarray, writers: np.ndarray
) -> WriterComparison:
    """Both models on ``(N, 784)`` uint8 real digits with ``(N,)`` labels and writer ids: their
    accuracies and the paired difference's interval, clustered by writer."""
    if len(labels) == 0:
        raise ValueError("no real digits to compare the models on")
    right_candidate = candidate.predict(images)[0] == labels
    right_champion = champion.predict(images)[0] == labels
    difference = stats.clustered_mean_interval(
        right_candidate.astype(float) - right_champion.astype(float), writers
    )
    seen = set((champion.metadata.get("real_writers") or {}).get("trained_on") or [])
    return WriterComparison(
        writers=tuple(int(writer) for writer in np.unique(writers)),
        digits=int(len(labels)),
        candidate_accuracy=float(right_candidate.mean()),
        champion_accuracy=float(right_champion.mean()),
        difference=difference,
        champion_saw_them=bool(seen & set(np.unique(writers).tolist())),
    )


@dataclass(frozen=True)
class Check:
    """One condition of the rule: its name, the figure it looked at, the bound it had to meet."""

    name: str  # "validation", "feedback holdout", "real writers"
    passed: bool
    text: str


@dataclass(frozen=True)
class Decision:
    promote: bool
    case: str  # FIRST, SAME, RETRAINING or CHALLENGER
    reason: str
    candidate: Scores
    champion: Scores | None
    max_val_drop: float
    margins: StudyMargins
    holdout_rows: int
    checks: tuple[Check, ...] = ()
    real: WriterComparison | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def accuracy(model: Model, images: np.ndarray, labels: np.ndarray) -> float | None:
    """Share of ``(N, 784)`` or ``(N, 28, 28)`` images (uint8 0..255 or float 0..1) read as ``(N,)``
    labels; None for no images."""
    if len(labels) == 0:
        return None
    digits, _ = model.predict(images)
    return float((digits == np.asarray(labels)).mean())


def decide(
    candidate: Scores,
    champion: Scores | None,
    *,
    margins: StudyMargins,
    max_val_drop: float = DEFAULT_MAX_VAL_DROP,
    holdout_rows: int = 0,
    real: WriterComparison | None = None,
) -> Decision:
    """Apply the promotion rule (module docstring) and say which case applied and why.
    ``champion`` None: nothing is served yet, the candidate is promoted."""
    if isinstance(max_val_drop, bool) or not (math.isfinite(max_val_drop) and max_val_drop >= 0):
        raise ValueError(f"max_val_drop must be a finite number >= 0, got {max_val_drop!r}")

    def made(promote: bool, case: str, reason: str, checks: tuple[Check, ...] = ()) -> Decision:
        return Decision(
            promote, case, reason, candidate, champion, max_val_drop, margins, holdout_rows, checks, real
        )

    if champion is None:
        return made(
            True,
            FIRST,
            f"promoted: no model is served yet, the candidate {candidate.version} becomes the first champion",
        )
    if candidate.version == champion.version and candidate.path_version == champion.path_version:
        return made(False, SAME, f"kept {champion.version}: the candidate has the same weights")
    if candidate.version == champion.version:
        # The same pixel weights with another path model: the pair is another version, judged as a
        # retraining (its pixel figures are the champion's, so only the pair's files change).
        candidate = replace(candidate, version=f"{candidate.version} (path {candidate.path_version})")
    same = candidate.configuration is not None and candidate.configuration == champion.configuration
    case = RETRAINING if same else CHALLENGER
    tolerance = 1e-12  # accuracies are ratios of image counts: equal counts must compare equal
    gain = candidate.val_accuracy - champion.val_accuracy
    val = f"{candidate.val_accuracy:.2%} vs {champion.val_accuracy:.2%}"
    if same:
        checks = [
            Check(
                "validation",
                gain >= -max_val_drop - tolerance,
                f"validation {val}: a change of {gain:+.2%}, the allowed drop {max_val_drop:.2%}",
            )
        ]
    else:
        checks = [
            Check(
                "validation",
                gain > margins.champion_margin + tolerance,
                f"validation {val}: a gain of {gain:+.2%}, to exceed the seed study's margin"
                f" {margins.champion_margin:.2%}",
            )
        ]
    cand_holdout, champ_holdout = candidate.holdout_accuracy, champion.holdout_accuracy
    if cand_holdout is not None and champ_holdout is not None:
        checks.append(
            Check(
                "feedback holdout",
                cand_holdout >= champ_holdout - tolerance,
                f"feedback holdout {cand_holdout:.2%} vs {champ_holdout:.2%} of {holdout_rows}",
            )
        )
    else:
        checks.append(Check("feedback holdout", True, "feedback holdout empty"))
    if real is not None:
        interval = real.difference
        checks.append(
            Check(
                "real writers",
                interval.high >= -tolerance,
                f"real writers {real.candidate_accuracy:.2%} vs {real.champion_accuracy:.2%} on"
                f" {real.digits} digits of {len(real.writers)} writers the candidate never saw: a change of"
                f" {interval.estimate:+.2%} (95 % interval {interval.low:+.2%} to {interval.high:+.2%},"
                f" clustered by writer)"
                + ("; the champion trained on some of them" if real.champion_saw_them else ""),
            )
        )
    else:
        checks.append(Check("real writers", True, "real writers: none held out from the candidate"))
    failed = [check.text for check in checks if not check.passed]
    kind = "a retraining (same configuration)" if same else "a challenger (another configuration)"
    if failed:
        reason = f"kept {champion.version}: candidate {candidate.version}, {kind}, fails " + "; ".join(failed)
    else:
        reason = (
            f"promoted: candidate {candidate.version}, {kind}, replaces {champion.version}: "
            + "; ".join(check.text for check in checks)
        )
    return made(not failed, case, reason, tuple(checks))


def install_model(candidate_dir: str | os.PathLike, model_dir: str | os.PathLike) -> Model:
    """Verify the candidate, copy ``mlp.npz`` then ``mlp.json`` into ``model_dir`` (each written
    to a temporary name, synced and renamed), then its ``path.npz`` and ``path.json`` (or remove the
    folder's old ones when the candidate has none: a pixel-only model), and return the installed
    model as loaded back."""
    candidate = load_model(candidate_dir)
    target = Path(model_dir)
    target.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS_NAME, METADATA_NAME):
        atomic_write(target / name, (Path(candidate_dir) / name).read_bytes())
    # The path model is half of the same version: its files follow, or the old ones go. Until
    # they have, the folder's path model names the old pixel model and the folder is refused.
    for source, installed_file in zip(path_io.paths_of(candidate_dir), path_io.paths_of(target)):
        if candidate.path is not None:
            atomic_write(installed_file, source.read_bytes())
        else:
            installed_file.unlink(missing_ok=True)
    installed = load_model(target)
    if installed.sha256 != candidate.sha256 or (installed.path is None) != (candidate.path is None):
        # another writer raced us: say so, never guess
        raise RuntimeError(f"{target} holds {installed.version} after installing {candidate.version}")
    return installed
