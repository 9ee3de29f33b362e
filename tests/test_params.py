"""Each notebook stage's typed parameters (doodle.params): defaults equal params.yaml, dvc.yaml's
stage lists what the stage reads and passes none of it on the command line, the notebook's
parameters cell names none of them, and a wrong key or type stops the stage with its name."""

from __future__ import annotations

import ast
import json

import pytest
import yaml

from doodle import params
from doodle.paths import ROOT

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def notebook_of(stage: dict) -> str:
    return stage["cmd"].split("papermill ", 1)[1].split()[0]


def parameter_names(notebook: dict) -> list[str]:
    """The names the notebook's one cell tagged `parameters` assigns, in order."""
    (cell,) = [c for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", [])]
    return [
        node.target.id for node in ast.parse("".join(cell["source"])).body if isinstance(node, ast.AnnAssign)
    ]


@pytest.mark.parametrize("kind", params.STAGE_PARAMS, ids=lambda kind: kind.STAGE)
def test_defaults_are_params_yaml(kind):
    from_file = kind.from_params_file(ROOT / "params.yaml")
    assert from_file == kind()
    if kind.SECTION is not None:
        assert set(PARAMS[kind.SECTION]) <= set(from_file.to_dict())


@pytest.mark.parametrize("kind", params.STAGE_PARAMS, ids=lambda kind: kind.STAGE)
def test_the_stage_lists_what_it_reads_and_its_notebook_takes_none_of_it(kind):
    stage = STAGES[kind.STAGE]
    assert sorted(stage["params"]) == kind.dvc_params()
    assert "${" not in stage["cmd"], f"{kind.STAGE}: its notebook reads params.yaml itself"
    notebook = json.loads((ROOT / notebook_of(stage)).read_text())
    names = set(parameter_names(notebook))
    assert {"params_file", "overrides"} <= names
    assert not names & set(kind().to_dict())
    assert kind.__name__ in "".join("".join(c["source"]) for c in notebook["cells"])


def test_overrides_win_and_unknown_keys_or_wrong_types_fail(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("base:\n  seed: 3\nevaluate:\n  doodle_count: 10\npromote:\n  max_val_drop: 0\n")
    evaluate = params.EvaluateParams.from_params_file(path, {"stroke_writers": 2})
    assert (evaluate.seed, evaluate.doodle_count, evaluate.stroke_writers) == (3, 10, 2)
    assert evaluate.number_count == params.EvaluateParams().number_count
    promote = params.PromoteParams.from_params_file(path)
    assert promote.max_val_drop == 0.0 and isinstance(promote.max_val_drop, float)
    assert promote.stroke_per_class == 30  # evaluate.stroke_per_class absent: the default
    with pytest.raises(ValueError, match="evaluate: unknown parameters doodle_cuont"):
        params.EvaluateParams.from_params_file(path, {"doodle_cuont": 5})
    with pytest.raises(ValueError, match="evaluate: parameter doodle_count must be int, got '5'"):
        params.EvaluateParams.from_dict({"doodle_count": "5"})
    with pytest.raises(ValueError, match="must be int, got True"):
        params.EvaluateParams.from_dict({"doodle_count": True})


PIPELINE_NOTEBOOKS = sorted({notebook_of(stage) for stage in STAGES.values() if "papermill " in stage["cmd"]})


@pytest.mark.parametrize("notebook", PIPELINE_NOTEBOOKS)
def test_papermill_reads_every_parameter_of_the_parameters_cell(notebook, caplog):
    """Papermill's own reading of the cell (`papermill --help-notebook`, the log of every run)
    skips a line with a second '=', in a comment too, and logs that it could not parse it."""
    import papermill

    path = ROOT / notebook
    assigned = parameter_names(json.loads(path.read_text()))
    with caplog.at_level("WARNING", logger="papermill"):
        inspected = papermill.inspect_notebook(str(path))
    assert list(inspected) == assigned
    assert not [record.message for record in caplog.records if "Unable to parse" in record.message]
