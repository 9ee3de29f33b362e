"""Each notebook stage's parameters, typed: one dataclass per stage, read from params.yaml by the
stage's notebook (``X.from_params_file(params_file, overrides)``), so `dvc.yaml`'s command passes
no parameter one by one and its ``params`` list the section.

A field has the name of its params.yaml key and of the keyword it feeds; its default is
params.yaml's value (a test checks), so a notebook rerun by hand gives the pipeline's result. A
stage reads its own section (``SECTION``) and the keys it shares with others (``SHARED``: field ->
``section.key``, e.g. ``base.seed``). The train stage's section is `doodle.model.train.TrainConfig`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

PARAMS_FILE = "params.yaml"
UNKNOWN_KEYS = "{stage}: unknown parameters {keys} (params.yaml's {section} section or the overrides)"
WRONG_TYPE = "{stage}: parameter {key} must be {kind}, got {value!r}"

# What a field's annotation accepts from YAML: an int is a float too, a bool is no int.
_ACCEPTS: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
    "tuple[int, ...]": (list, tuple),
}


@dataclass(frozen=True)
class StageParams:
    """The base of every stage's parameters: reading, checking and typing them."""

    STAGE: ClassVar[str] = ""  # the dvc.yaml stage that reads them
    SECTION: ClassVar[str | None] = None  # its params.yaml section (None: only shared keys)
    SHARED: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Self:
        """Parameters from a dict; an unknown key, or a value of another type than its field's
        (``True`` for an int, ``"3"`` for a float), is a `ValueError` naming it."""
        fields = {field.name: field for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(
                UNKNOWN_KEYS.format(stage=cls.STAGE, keys=", ".join(unknown), section=cls.SECTION)
            )
        typed = {}
        for key, value in values.items():
            kind = str(fields[key].type)
            accepted = _ACCEPTS[kind]
            if not isinstance(value, accepted) or (kind != "bool" and isinstance(value, bool)):
                raise ValueError(WRONG_TYPE.format(stage=cls.STAGE, key=key, kind=kind, value=value))
            if kind == "tuple[int, ...]":
                if not all(isinstance(item, int) and not isinstance(item, bool) for item in value):
                    raise ValueError(
                        WRONG_TYPE.format(stage=cls.STAGE, key=key, kind="a list of ints", value=value)
                    )
                value = tuple(value)
            typed[key] = float(value) if kind == "float" else value
        return cls(**typed)

    @classmethod
    def from_params_file(
        cls, path: str | Path = PARAMS_FILE, overrides: Mapping[str, Any] | None = None
    ) -> Self:
        """The stage's keys of a params file (params.yaml's layout), then ``overrides`` (a
        notebook run's changes, e.g. ``{"doodle_count": 300}``); keys the file does not hold keep
        their defaults."""
        import yaml  # here, so that importing the package does not need PyYAML

        document = yaml.safe_load(Path(path).read_text()) or {}
        values: dict[str, Any] = {}
        for name, key in cls.SHARED.items():
            section, _, leaf = key.partition(".")
            if leaf in (document.get(section) or {}):
                values[name] = document[section][leaf]
        if cls.SECTION is not None:
            values.update(document.get(cls.SECTION) or {})
        values.update(overrides or {})
        return cls.from_dict(values)

    @classmethod
    def dvc_params(cls) -> list[str]:
        """What the stage's ``params`` in dvc.yaml list: the shared keys and the section."""
        return sorted({*cls.SHARED.values(), *([cls.SECTION] if cls.SECTION else [])})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class FeedbackParams(StageParams):
    """The feedback stage (00_feedback): people's corrections validated and split by Spark."""

    STAGE: ClassVar[str] = "feedback"
    SECTION: ClassVar[str | None] = "feedback"
    SHARED: ClassVar[Mapping[str, str]] = {"seed": "base.seed", "spark_master": "prepare.spark_master"}

    seed: int = 20261123  # the hash split derives from it
    spark_master: str = "local[*]"  # Spark master URL, the prepare stage's
    holdout_fraction: float = 0.2  # share of distinct drawings kept out of training to judge promotion
    spark_driver_memory: str = "1g"  # feedback is small
    gallery_size: int = 32  # newest corrected drawings shown


@dataclass(frozen=True)
class PrepareParams(StageParams):
    """The prepare stage (01_prepare): MNIST's IDX files validated and split by Spark."""

    STAGE: ClassVar[str] = "prepare"
    SECTION: ClassVar[str | None] = "prepare"
    SHARED: ClassVar[Mapping[str, str]] = {"seed": "base.seed"}

    seed: int = 20261123  # every random choice derives from this
    spark_master: str = "local[*]"  # Spark master URL, e.g. spark://host:7077 for a cluster
    spark_driver_memory: str = "4g"  # MNIST does not fit Spark's 1g default
    validation_size: int = 5000  # images split off the 60,000 training images, classes in proportion


@dataclass(frozen=True)
class PendigitsParams(StageParams):
    """The pendigits stage (01_pendigits): real writers' pen trajectories checked and drawn by Spark."""

    STAGE: ClassVar[str] = "pendigits"
    SECTION: ClassVar[str | None] = "pendigits"
    SHARED: ClassVar[Mapping[str, str]] = {"seed": "base.seed"}

    seed: int = 20261123  # the writers' fold assignment
    spark_master: str = "local[*]"  # or a cluster URL such as spark://host:7077
    spark_driver_memory: str = "2g"
    pen_widths: tuple[int, ...] = (10, 18, 20, 26)  # px on the 280 px pad; 20 is the pad's own pen
    folds: int = 5  # writer folds (6 writers each)


@dataclass(frozen=True)
class DeriveParams(StageParams):
    """The derive stage (02_derive): the MLP's gradients checked step by step."""

    STAGE: ClassVar[str] = "derive"
    SHARED: ClassVar[Mapping[str, str]] = {
        "seed": "base.seed",
        "label_smoothing": "train.label_smoothing",
        "weight_decay": "train.weight_decay",
        "learning_rate": "train.learning_rate",
        "lr_schedule": "train.lr_schedule",
        "batch_size": "train.batch_size",
    }

    seed: int = 20261123  # random weights, the random batch and the training subset derive from this
    label_smoothing: float = 0.1  # the smoothed target the gradients are checked at
    weight_decay: float = 0.0  # AdamW's decoupled decay, checked in the update
    learning_rate: float = 0.001  # the AdamW step and the hand-written training loop
    lr_schedule: str = "cosine"
    batch_size: int = 128  # the hand-written loop's mini-batch


@dataclass(frozen=True)
class EvaluateParams(StageParams):
    """The evaluate stage (04_evaluate): the candidate on MNIST test and the development benchmarks."""

    STAGE: ClassVar[str] = "evaluate"
    SECTION: ClassVar[str | None] = "evaluate"
    SHARED: ClassVar[Mapping[str, str]] = {"seed": "base.seed"}

    seed: int = 20261123  # the doodle benchmark's pens, sizes and places derive from it
    doodle_count: int = 3000  # validation digits (a stratified random sample) redrawn as doodles
    stroke_per_class: int = 30  # pen-stroke benchmark: digits per class at each of its 7 pen widths
    stroke_writers: int = 14  # pen-stroke benchmark: held-out writers
    calibration_bins: int = 15  # equal-width confidence bins of the reliability diagram and the ECE
    mistakes_shown: int = (
        24  # most confident mistakes in the gallery, and at most per kind in the error analysis
    )
    robustness_count: int = (
        2000  # validation digits (a stratified random sample) behind each robustness curve
    )
    rotation_max_degrees: float = 45.0  # rotation curve runs from -max to +max
    rotation_step_degrees: float = 5.0
    shift_max_pixels: float = 6.0  # horizontal shift curve runs from -max to +max
    shift_step_pixels: float = 0.5
    scale_min: float = 0.5  # scale curve: factor from min to max
    scale_max: float = 1.5
    scale_step: float = 0.05
    stroke_delta_min: float = -1.0  # stroke curve: thinner (< 0) to thicker (> 0), pixels each side
    stroke_delta_max: float = 2.0
    stroke_delta_step: float = 0.25
    number_count: int = 60  # composed numbers per spacing band and digit count (2-6 digits)


@dataclass(frozen=True)
class PromoteParams(StageParams):
    """The promote stage (05_promote): the candidate against the served model, by the promotion rule."""

    STAGE: ClassVar[str] = "promote"
    SECTION: ClassVar[str | None] = "promote"
    SHARED: ClassVar[Mapping[str, str]] = {
        "seed": "base.seed",
        "stroke_per_class": "evaluate.stroke_per_class",
        "stroke_writers": "evaluate.stroke_writers",
    }

    seed: int = 20261123  # the pen-stroke benchmark's writers derive from it, as in 04_evaluate
    stroke_per_class: int = 30  # pen-stroke benchmark: digits per class at each of its 7 pen widths
    stroke_writers: int = 14  # pen-stroke benchmark: held-out writers
    max_val_drop: float = 0.003  # largest MNIST validation accuracy drop of a retraining taken as noise


@dataclass(frozen=True)
class ExperimentsParams(StageParams):
    """The experiments stage (06_experiments): the seed and ablation study's table from its CSV."""

    STAGE: ClassVar[str] = "experiments"
    SECTION: ClassVar[str | None] = "experiments"

    baseline: str = "default"  # the configuration every ablation is compared with
    confidence: float = 0.95  # two-sided level of the paired t intervals


STAGE_PARAMS: tuple[type[StageParams], ...] = (
    FeedbackParams,
    PrepareParams,
    PendigitsParams,
    DeriveParams,
    EvaluateParams,
    PromoteParams,
    ExperimentsParams,
)
