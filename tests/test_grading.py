"""The labs as graded assignments (issue 22): nbgrader releases them and grades submissions.

Each lab in notebooks/ is an nbgrader source notebook. These tests build a course directory from them
(notebooks/course.py), let nbgrader generate the student versions, check that those hold no solution,
hidden test or answer, and autograde two submissions of each lab on real containers: a solved copy
(full marks) and the untouched student copy (zero, every cell outside the checks running without error).
The self-check cells' answer handling (notebooks/selfcheck.py) is pure logic, tested on its own first.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
sys.path.insert(0, str(NOTEBOOKS))

from course import labs, make_course
from selfcheck import AnswerTypeError, Kind, canonical, digest, equivalent, seal, self_check

from nbhelpers import remove_leftovers

NBGRADER_TIMEOUT_S = 600
SOLUTION_BEGIN, SOLUTION_END = "### BEGIN SOLUTION", "### END SOLUTION"
HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
#: Cells whose error is the lesson (nbval's tag); every other cell must run cleanly.
ERROR_EXPECTED_TAG = "raises-exception"


# ------------------------------------------------------------ self-check logic
@pytest.mark.parametrize(("kind", "answer", "expected"), [
    (Kind.NAMES, ["start", "pause"], {"pause", "start"}),
    (Kind.NAMES, "pause, start", ("start", "pause")),
    (Kind.NAMES, ["Start()", " pause"], ["pause", "start"]),
    (Kind.NUMBER, "44", 44),
    (Kind.NUMBER, 44.0, 44),
    (Kind.NUMBERS, ("0", 137), [0, 137]),
    (Kind.NUMBERS, "0, 137", [0, 137]),
    (Kind.FLAG, "false", False),
    (Kind.FLAG, "No", False),
    (Kind.OPTION, "--leave-running", "leave_running"),
    (Kind.TEXT, " '/etc/passwd' ", "/etc/passwd"),
])
def test_equivalent_answers_are_the_same(kind: Kind, answer: object, expected: object) -> None:
    assert equivalent(kind, answer, expected)
    assert digest("Exercise", kind, answer) == digest("Exercise", kind, expected)


@pytest.mark.parametrize(("kind", "answer", "expected"), [
    (Kind.NAMES, ["start"], {"start", "pause"}),
    (Kind.NUMBERS, [137, 0], [0, 137]),         # order matters in a sequence
    (Kind.NUMBER, 300, 44),
    (Kind.FLAG, True, False),
    (Kind.NUMBER, True, 1),                    # a bool is not a number
])
def test_different_answers_differ(kind: Kind, answer: object, expected: object) -> None:
    assert not equivalent(kind, answer, expected)


@pytest.mark.parametrize(("kind", "answer"), [(Kind.NUMBER, "forty-four"), (Kind.NAMES, [1, 2]),
                                              (Kind.FLAG, "maybe"), (Kind.TEXT, 1000)])
def test_an_answer_of_the_wrong_type_says_what_was_expected(kind: Kind, answer: object) -> None:
    with pytest.raises(AnswerTypeError, match="expected"):
        canonical(kind, answer)


def _feedback(answer: object) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        self_check("Exercise 9", answer, Kind.NUMBER, right=digest("Exercise 9", Kind.NUMBER, 44),
                   explain=seal("Exercise 9", Kind.NUMBER, 44, "the low byte of 300"),
                   hints={digest("Exercise 9", Kind.NUMBER, 300): "one byte holds 0 to 255"}, hint="generic")
    return out.getvalue().strip()


def test_self_check_gives_a_hint_per_wrong_answer_and_opens_the_explanation_only_when_right() -> None:
    assert _feedback("44") == "✔ Exercise 9: right. the low byte of 300"
    assert _feedback(300.0) == "✘ Exercise 9: not quite. Hint: one byte holds 0 to 255"
    assert _feedback(7) == "✘ Exercise 9: not quite. Hint: generic"
    assert _feedback(None) == "… Exercise 9: not answered yet. Hint: generic"
    assert _feedback("lots") == "✘ Exercise 9: expected a whole number, got 'lots'."
    sealed = seal("Exercise 9", Kind.NUMBER, 44, "the low byte of 300")
    assert "low byte" not in sealed and "44" not in sealed


# ------------------------------------------------------------ nbgrader
def _nbgrader(course: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, check=False, capture_output=True,
                          text=True, timeout=NBGRADER_TIMEOUT_S)
    assert proc.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def _cells(path: Path) -> list[nbformat.NotebookNode]:
    return nbformat.read(path, as_version=4).cells


def _grade_meta(cell: nbformat.NotebookNode) -> dict[str, object]:
    return cell.metadata.get("nbgrader", {})


def _solutions(source: Path) -> dict[str, str]:
    """Each answer cell's solution (what a student who solved the lab would have written), by grade_id."""
    return {str(_grade_meta(c)["grade_id"]): c.source.split(SOLUTION_BEGIN + "\n")[1].split("\n" + SOLUTION_END)[0]
            for c in _cells(source) if _grade_meta(c).get("solution")}


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A course with every lab released; the environment its nbgrader commands run in."""
    course = tmp_path_factory.mktemp("course")
    stores = tmp_path_factory.mktemp("stores")
    env = {**os.environ, "KERNELEXT_NOTEBOOK_STORE": str(stores), "IPYKERNEL_CELL_NAME": "<IPY-INPUT>",
           "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    make_course(course)
    for lab in labs():
        _nbgrader(course, "generate_assignment", lab, "--force", env=env)
    yield course, env
    for lab in labs():  # a lab that failed halfway leaves nothing running
        remove_leftovers(stores, lab)


def test_every_lab_is_an_nbgrader_source_notebook() -> None:
    assert len(labs()) >= 3 and all(lab.startswith("lab-") for lab in labs())
    for lab in labs():
        cells = _cells(NOTEBOOKS / f"{lab}.ipynb")
        graded = [c for c in cells if _grade_meta(c).get("grade")]
        answers = [c for c in cells if _grade_meta(c).get("solution")]
        assert graded and answers, lab
        assert all(_grade_meta(c)["points"] > 0 and HIDDEN_BEGIN in c.source for c in graded), lab
        assert all(SOLUTION_BEGIN in c.source for c in answers), lab
        assert not any("## Answers" in c.source for c in cells), f"{lab} still has an answers section"


@pytest.mark.integration  # nbgrader's own commands; the course fixture is shared with the autograde test
@pytest.mark.timeout(NBGRADER_TIMEOUT_S)
@pytest.mark.parametrize("lab", labs())
def test_the_student_version_holds_no_solution_hidden_test_or_answer(course: tuple[Path, dict[str, str]],
                                                                      lab: str) -> None:
    course_dir, _ = course
    released = course_dir / "release" / lab
    assert {p.name for p in released.iterdir()} >= {f"{lab}.ipynb", "nbhelpers.py", "selfcheck.py"}
    cells = _cells(released / f"{lab}.ipynb")
    text = json.dumps([c.source for c in cells])
    assert SOLUTION_BEGIN not in text and HIDDEN_BEGIN not in text and "equivalent(" not in text
    assert all(not c.get("outputs") for c in cells if c.cell_type == "code"), "stored outputs reveal the answers"
    for grade_id, solution in _solutions(NOTEBOOKS / f"{lab}.ipynb").items():
        answer_cell = next(c for c in cells if _grade_meta(c).get("grade_id") == grade_id)
        assert solution not in answer_cell.source
        assert "= None" in answer_cell.source or "= set()" in answer_cell.source  # Run All goes on past it


def _score(course_dir: Path, lab: str, student: str) -> tuple[float, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission(lab, student)
        return submission.score, submission.max_score


def _errors(notebook: Path) -> list[str]:
    """Errors of the cells that are not exercise checks and not meant to fail."""
    return [f"{out.ename}: {out.evalue} in {c.source[:80]!r}" for c in _cells(notebook) if c.cell_type == "code"
            and not _grade_meta(c).get("grade") and ERROR_EXPECTED_TAG not in c.metadata.get("tags", [])
            for out in c.outputs if out.output_type == "error"]


@pytest.mark.integration  # runs every lab's notebook on real containers
@pytest.mark.timeout(NBGRADER_TIMEOUT_S)
@pytest.mark.parametrize("lab", labs())
def test_autograde_gives_full_marks_to_a_solved_copy_and_zero_to_an_unsolved_one(
        course: tuple[Path, dict[str, str]], lab: str) -> None:
    course_dir, env = course
    solutions = _solutions(NOTEBOOKS / f"{lab}.ipynb")
    for student in ("solved", "unsolved"):
        submitted = course_dir / "submitted" / student / lab
        submitted.mkdir(parents=True)
        for path in (course_dir / "release" / lab).iterdir():
            submitted.joinpath(path.name).write_bytes(path.read_bytes())
    solved_path = course_dir / "submitted" / "solved" / lab / f"{lab}.ipynb"
    solved = nbformat.read(solved_path, as_version=4)
    for cell in solved.cells:
        if _grade_meta(cell).get("grade_id") in solutions:
            cell.source = solutions[_grade_meta(cell)["grade_id"]]
    nbformat.write(solved, solved_path)

    _nbgrader(course_dir, "autograde", lab, "--create", "--force", env=env)

    score, max_score = _score(course_dir, lab, "solved")
    assert max_score > 0 and score == max_score
    assert _score(course_dir, lab, "unsolved") == (0, max_score)
    for student in ("solved", "unsolved"):
        graded = course_dir / "autograded" / student / lab / f"{lab}.ipynb"
        assert _errors(graded) == [], f"{student}: a cell failed outside the checks"
    feedback = [line for c in _cells(course_dir / "autograded" / "solved" / lab / f"{lab}.ipynb")
                if _grade_meta(c).get("grade") for out in c.outputs if out.get("name") == "stdout"
                for line in out.text.splitlines() if line.strip()]
    assert feedback and all(line.startswith("✔") for line in feedback), feedback
