"""The promotion rule and the one way a model reaches ``models/``, the folder that is served.

Training writes a *candidate* (``data/candidate/``); the `promote` stage measures it and the
served model (the *champion*, ``models/``) on the same images and calls `decide`:

    promote  <=>  val(candidate) >= val(champion) - max_val_drop     (MNIST validation, 5,000 images)
             and  holdout(candidate) >= holdout(champion)             (feedback holdout; no rows: passes)

``max_val_drop`` is a noise margin: on 5,000 validation images an accuracy near 99 % has a
binomial standard error of sqrt(0.99 * 0.01 / 5000) = 0.14 points, and two runs of the same
configuration land about that far apart (99.09 % and 99.12 % test, same seed on two CPUs), so a
drop of up to about two standard errors (0.3 points, 15 images) is not taken as evidence of a
worse model. The feedback holdout has no margin: the point of a retraining is to read people's
drawings better, so the new model must not read fewer of them right.

A *challenger* (another configuration trained apart from the pipeline, e.g. the long
configuration of ``params-long.yaml``) has to do more than match the champion: ``decide`` with
``min_val_gain`` promotes it only when

    val(candidate) - val(champion) > min_val_gain                          (and the holdout as above)

with ``min_val_gain`` the seed study's noise margin (`study_margin`: two standard deviations of the
default configuration's validation accuracy over seeds, ``reports/metrics/experiments.json``), so
the champion moves only for a gain that seed-to-seed noise does not explain.

`install_model` copies the candidate's two files into ``models/`` with an atomic rename each,
weights first; a server polling the folder (`doodle.model_watch`) loads them only once both
have settled and the checksum matches, so it never serves a half-written model.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from doodle.model_io import METADATA_NAME, WEIGHTS_NAME, Model, atomic_write, load_model

DEFAULT_MAX_VAL_DROP = 0.003

FIRST = "promoted: no model is served yet, the candidate {candidate} becomes the first champion"
PROMOTED = (
    "promoted: candidate {candidate} replaces {champion}: validation {cand_val:.2%} vs {champ_val:.2%}"
    " (allowed drop {margin:.2%}), feedback holdout {holdout}"
)
KEPT_VAL = (
    "kept {champion}: candidate {candidate} is worse on MNIST validation, {cand_val:.2%} vs {champ_val:.2%}"
    " (a drop of {drop:.2%} > the allowed {margin:.2%})"
)
KEPT_HOLDOUT = (
    "kept {champion}: candidate {candidate} reads fewer feedback holdout drawings right,"
    " {cand_holdout:.2%} vs {champ_holdout:.2%} of {rows}"
)
SAME = "kept {champion}: the candidate has the same weights"
PROMOTED_GAIN = (
    "promoted: candidate {candidate} replaces {champion}: validation {cand_val:.2%} vs {champ_val:.2%},"
    " a gain of {gain:+.2%} beyond the noise margin {margin:.2%}, feedback holdout {holdout}"
)
KEPT_GAIN = (
    "kept {champion}: candidate {candidate} gains {gain:+.2%} on MNIST validation ({cand_val:.2%} vs"
    " {champ_val:.2%}), not more than the noise margin {margin:.2%}"
)

# The seed study's champion margin (notebooks/06_experiments.ipynb writes it).
STUDY_MARGIN_KEY = "champion_margin_val_accuracy"
NO_STUDY = "{path}: no seed study results (run the experiments stage: dvc repro experiments)"
BAD_STUDY = "{path}: {problem}; the noise margin needs the experiments stage's {key} from at least 2 seeds"


@dataclass(frozen=True)
class StudyMargin:
    """The noise margin a challenger's validation gain must exceed, and where it comes from."""

    value: float  # accuracy fraction, e.g. 0.0005 for 0.05 points
    seeds: int  # seeds of the default configuration behind it
    source: str  # the metrics file it was read from

    def describe(self, validation_images: int | None = None) -> str:
        images = f" ({self.value * validation_images:.1f} of {validation_images:,} images)" if validation_images else ""
        return (
            f"{self.value:.4%} of validation accuracy{images}: two standard deviations of the default"
            f" configuration's validation accuracy over {self.seeds} seeds ({self.source})"
        )


def study_margin(path: str | os.PathLike) -> StudyMargin:
    """Read the champion margin from the experiments stage's metrics JSON (``{"seeds": n,
    "champion_margin_val_accuracy": m, ...}``); a missing file, a missing or null margin (fewer than
    2 seeds) or a value that is not a finite number >= 0 is a `ValueError` saying which."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(NO_STUDY.format(path=path)) from None
    except json.JSONDecodeError as error:
        raise ValueError(BAD_STUDY.format(path=path, problem=f"not JSON ({error})", key=STUDY_MARGIN_KEY)) from None
    value = document.get(STUDY_MARGIN_KEY) if isinstance(document, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(BAD_STUDY.format(path=path, problem=f"{STUDY_MARGIN_KEY} is {value!r}", key=STUDY_MARGIN_KEY))
    return StudyMargin(value=float(value), seeds=int(document.get("seeds") or 0), source=str(path))


@dataclass(frozen=True)
class Scores:
    """A model's accuracies on the promotion sets; ``holdout_accuracy`` is None without rows."""

    version: str
    val_accuracy: float
    holdout_accuracy: float | None


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    candidate: Scores
    champion: Scores | None
    max_val_drop: float
    holdout_rows: int
    min_val_gain: float | None = None  # set for a challenger: the validation gain it had to exceed

    def to_dict(self) -> dict:
        return asdict(self)


def accuracy(model: Model, images: np.ndarray, labels: np.ndarray) -> float | None:
    """Share of ``(N, 784)`` images (uint8 0..255 or float 0..1) read as ``(N,)`` labels; None
    for no images."""
    if len(labels) == 0:
        return None
    digits, _ = model.predict(images)
    return float((digits == np.asarray(labels)).mean())


def decide(
    candidate: Scores,
    champion: Scores | None,
    *,
    max_val_drop: float = DEFAULT_MAX_VAL_DROP,
    holdout_rows: int = 0,
    min_val_gain: float | None = None,
) -> Decision:
    """Apply the promotion rule (module docstring). ``champion`` None: nothing is served yet.
    ``min_val_gain`` (a challenger): the candidate must beat the champion's validation accuracy by
    more than it, instead of staying within ``max_val_drop`` of it."""
    if not (math.isfinite(max_val_drop) and max_val_drop >= 0):
        raise ValueError(f"max_val_drop must be a finite number >= 0, got {max_val_drop!r}")
    if min_val_gain is not None and not (math.isfinite(min_val_gain) and min_val_gain >= 0):
        raise ValueError(f"min_val_gain must be a finite number >= 0, got {min_val_gain!r}")

    def made(promote: bool, reason: str) -> Decision:
        return Decision(promote, reason, candidate, champion, max_val_drop, holdout_rows, min_val_gain)

    if champion is None:
        return made(True, FIRST.format(candidate=candidate.version))
    if candidate.version == champion.version:
        return made(False, SAME.format(champion=champion.version))
    names = {"candidate": candidate.version, "champion": champion.version}
    drop = champion.val_accuracy - candidate.val_accuracy
    if min_val_gain is not None and -drop <= min_val_gain + 1e-12:
        return made(False, KEPT_GAIN.format(**names, cand_val=candidate.val_accuracy,
                                            champ_val=champion.val_accuracy, gain=-drop, margin=min_val_gain))
    if min_val_gain is None and drop > max_val_drop + 1e-12:
        return made(False, KEPT_VAL.format(**names, cand_val=candidate.val_accuracy,
                                           champ_val=champion.val_accuracy, drop=drop, margin=max_val_drop))
    cand_holdout, champ_holdout = candidate.holdout_accuracy, champion.holdout_accuracy
    if cand_holdout is not None and champ_holdout is not None and cand_holdout < champ_holdout:
        return made(False, KEPT_HOLDOUT.format(**names, cand_holdout=cand_holdout,
                                               champ_holdout=champ_holdout, rows=holdout_rows))
    holdout = (
        f"{cand_holdout:.2%} vs {champ_holdout:.2%} of {holdout_rows}"
        if cand_holdout is not None and champ_holdout is not None
        else "empty"
    )
    if min_val_gain is not None:
        return made(True, PROMOTED_GAIN.format(**names, cand_val=candidate.val_accuracy,
                                               champ_val=champion.val_accuracy, gain=-drop, margin=min_val_gain,
                                               holdout=holdout))
    return made(True, PROMOTED.format(**names, cand_val=candidate.val_accuracy, champ_val=champion.val_accuracy,
                                      margin=max_val_drop, holdout=holdout))


def install_model(candidate_dir: str | os.PathLike, model_dir: str | os.PathLike) -> Model:
    """Verify the candidate, copy ``mlp.npz`` then ``mlp.json`` into ``model_dir`` (each written
    to a temporary name, synced and renamed), and return the installed model as loaded back."""
    candidate = load_model(candidate_dir)
    target = Path(model_dir)
    target.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS_NAME, METADATA_NAME):
        atomic_write(target / name, (Path(candidate_dir) / name).read_bytes())
    installed = load_model(target)
    if installed.sha256 != candidate.sha256:  # another writer raced us: say so, never guess
        raise RuntimeError(f"{target} holds {installed.version} after installing {candidate.version}")
    return installed
