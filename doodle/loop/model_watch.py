"""Notice a new model at the served source and switch to it only once it is loaded and checked.

The API and the dashboard each hold a `ModelWatcher` and call `ModelWatcher.poll` now and then
(the API from a background task, the dashboard before a prediction). A poll reads a cheap
*fingerprint* of the source: for model files, the size and modification time of ``mlp.npz``
and ``mlp.json``; for a registry URI, the version an alias points to (`fingerprint_fn`). A new
fingerprint is loaded only after it has been seen unchanged on two polls in a row, so a model
being written (the weights first, then the metadata) is not read half-way. The new model is
loaded with the same verifying loader as at start-up; on success the watcher's ``model``
reference is replaced in one assignment, so a request that already took the old model finishes
with it and the next one gets the new one. A file that fails to load is refused and logged, and
the old model keeps serving; the same broken fingerprint is not retried until it changes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path

from doodle.model import path_io
from doodle.model.model_io import METADATA_NAME, WEIGHTS_NAME, Model

log = logging.getLogger("doodle.loop.model_watch")

Fingerprint = Hashable


def file_fingerprint(path: str | os.PathLike) -> Fingerprint:
    """``(size, mtime_ns)`` of the weights and the metadata file of the model at ``path`` (a
    folder, the .npz or the .json) and of the path model's two files beside them; ``None`` for a
    missing file. Costs four ``stat`` calls."""
    path = Path(path)
    if path.is_dir() or path.suffix not in (".npz", ".json"):
        files = (path / WEIGHTS_NAME, path / METADATA_NAME)
    else:
        files = (path.with_suffix(".npz"), path.with_suffix(".json"))
    # The path model's files beside them are part of the same model version.
    files += path_io.paths_of(files[0].parent)
    stamps = []
    for file in files:
        try:
            stat = file.stat()
        except OSError:
            stamps.append(None)
        else:
            stamps.append((stat.st_size, stat.st_mtime_ns))
    return tuple(stamps)


@dataclass(frozen=True)
class Switch:
    """What a poll did: ``"switched"`` (``model`` is the new one), ``"refused"`` (``error``
    says why) or ``"unchanged"``."""

    outcome: str
    model: Model | None = None
    error: str | None = None


UNCHANGED = Switch("unchanged")


class ModelWatcher:
    """The served model and the fingerprint it was loaded from.

    ``load``: the verifying loader (raises on a bad model); ``fingerprint_fn``: the source's
    current fingerprint (raises when it cannot be read: the poll is then skipped). Call
    `load_initial` once; when it fails, ``model`` stays ``None`` and the first good model that
    appears later is loaded by `poll`. ``clock`` gives the switch time (seconds since the epoch).
    """

    def __init__(
        self,
        load: Callable[[], Model],
        fingerprint_fn: Callable[[], Fingerprint],
        *,
        clock: Callable[[], float] = time.time,
    ):
        self._load = load
        self._fingerprint = fingerprint_fn
        self._clock = clock
        self._lock = threading.Lock()
        self.model: Model | None = None
        self.switched_at: float | None = None
        self.switches = 0
        self.failures = 0
        self.last_error: str | None = None
        self._loaded: Fingerprint | None = None
        self._pending: Fingerprint | None = None
        self._refused: Fingerprint | None = None

    def load_initial(self) -> Model:
        """Load the model at start-up, raising what the loader raises. The fingerprint is read
        first, so a model replaced during the load is noticed by the next polls."""
        with self._lock:
            current = self._read_fingerprint()
            try:
                model = self._load()
            except Exception as exc:
                self._refused = current
                self.last_error = f"{type(exc).__name__}: {exc}"
                raise
            self._loaded = current
            self.model = model
            self.switched_at = self._clock()
            return model

    def _read_fingerprint(self) -> Fingerprint | None:
        try:
            return self._fingerprint()
        except Exception as exc:  # registry unreachable, permission denied: try again later
            log.warning("cannot read the model source's fingerprint: %s: %s", type(exc).__name__, exc)
            return None

    def poll(self) -> Switch:
        """Look at the source once; load and switch when a new fingerprint has settled.
        Thread-safe: concurrent polls are serialised and never load the same model twice."""
        with self._lock:
            current = self._read_fingerprint()
            if current is None or current == self._loaded or current == self._refused:
                self._pending = None
                return UNCHANGED
            if current != self._pending:
                self._pending = current  # changed since the last poll: wait until it settles
                return UNCHANGED
            self._pending = None
            try:
                model = self._load()
            except Exception as exc:
                self._refused = current
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error(
                    "new model refused, still serving %s: %s",
                    self.model.version if self.model is not None else "no model",
                    self.last_error,
                )
                return Switch("refused", error=self.last_error)
            old = self.model.version if self.model is not None else "no model"
            self._loaded, self._refused = current, None
            self.last_error = None
            if self.model is not None and path_io.pair_identity(model) == path_io.pair_identity(self.model):
                return UNCHANGED  # the same weights rewritten: nothing to switch
            self.model = model
            self.switched_at = self._clock()
            self.switches += 1
            log.warning("switched model %s -> %s", old, model.version)
            return Switch("switched", model=model)
