"""scripts/real_writers_tables.py: the README's real-handwriting tables come from the committed results."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "real_writers_tables.py"
EXPERIMENTS = ROOT / "reports" / "experiments"

sys.path.insert(0, str(SCRIPT.parent))
import real_writers_tables  # noqa: E402


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT)


def test_repository_readme_tables_match_the_committed_results():
    result = run("--check")
    assert result.returncode == 0, result.stderr


def _project(tmp_path: Path) -> Path:
    """A copy of the committed results and the README, to change without touching the clone."""
    shutil.copytree(EXPERIMENTS / "writer_cv", tmp_path / "reports" / "experiments" / "writer_cv")
    for name in ("path_cv.csv", "path_cv_confusions.csv"):
        shutil.copy(EXPERIMENTS / name, tmp_path / "reports" / "experiments" / name)
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    return tmp_path


def test_a_changed_result_makes_the_check_fail_and_a_rewrite_mends_it(tmp_path):
    project = _project(tmp_path)
    path_cv = project / "reports" / "experiments" / "path_cv.csv"
    # The pooled view reads one more 9 right than was committed.
    lines = path_cv.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("digit,9,both,"))
    fields = lines[index].split(",")
    fields[4] = str(int(fields[4]) + 1)
    lines[index] = ",".join(fields)
    path_cv.write_text("\n".join(lines) + "\n")
    args = ("--root", str(project), "--readme", str(project / "README.md"))

    stale = run(*args, "--check")
    assert stale.returncode == 1 and "path-cv block is out of date" in stale.stderr
    assert run(*args).returncode == 0
    assert (
        f"9: {real_writers_tables.counted(int(fields[4]), int(fields[3]))}"
        in (project / "README.md").read_text()
    )
    assert run(*args, "--check").returncode == 0


def test_a_readme_without_the_markers_is_named(tmp_path):
    project = _project(tmp_path)
    (project / "README.md").write_text("# Title\n\nNo tables here.\n")
    result = run("--root", str(project), "--readme", str(project / "README.md"), "--check")
    assert result.returncode != 0 and "writer-cv:start" in result.stderr


def test_a_share_at_a_bar_is_not_rounded_onto_it():
    # 701 of 719 is just under 97.5 %: the table must not print 97.50 %.
    assert real_writers_tables.counted(701, 719) == "97.497 % (701/719)"
