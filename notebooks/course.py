"""Make an nbgrader course directory from the labs in this folder (not part of kernelext).

    .venv/bin/python notebooks/course.py COURSE_DIR [lab-01-lifecycle ...]   # all labs when none are named
    cd COURSE_DIR && nbgrader generate_assignment lab-01-lifecycle           # the student version, in release/

Each lab here is an nbgrader *source* notebook: its answer cells hold the solution between
``### BEGIN SOLUTION`` and ``### END SOLUTION``, its check cells are graded (points) and hold hidden
tests between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS``. This script copies each lab
with the helpers it imports into ``source/<lab>/`` and writes the course's ``nbgrader_config.py``;
existing copies are replaced, the gradebook is left alone. See notebooks/README.md for the whole release.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).parent
LAB_GLOB = "lab-*.ipynb"
#: Imported by every lab: they go next to the notebook in the student's copy.
HELPERS = ("nbhelpers.py", "selfcheck.py")
#: The course's configuration. The stub keeps the answer line above it (``x = None``), so a student's
#: Run All goes on past an unanswered exercise instead of stopping at nbgrader's NotImplementedError.
CONFIG = '''\
c = get_config()  # noqa: F821 - nbgrader's configuration object
c.CourseDirectory.course_id = "kernelext-labs"
c.ClearSolutions.code_stub = {"python": "# YOUR ANSWER: replace the value above"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
# A lab's cells run containers; a loaded host can take longer than nbgrader's 30 s per cell.
c.Execute.timeout = 300
'''


def labs() -> list[str]:
    return sorted(p.stem for p in HERE.glob(LAB_GLOB))


def make_course(course: Path, names: list[str] | None = None) -> list[str]:
    """Write ``course``'s config and ``source/<lab>/`` for each lab; the labs written."""
    names = names or labs()
    unknown = sorted(set(names) - set(labs()))
    if unknown:
        raise ValueError(f"no such lab: {', '.join(unknown)} (labs: {', '.join(labs())})")
    course.mkdir(parents=True, exist_ok=True)
    (course / "nbgrader_config.py").write_text(CONFIG)
    for name in names:
        target = course / "source" / name
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        shutil.copy2(HERE / f"{name}.ipynb", target)
        for helper in HELPERS:
            shutil.copy2(HERE / helper, target)
    return names


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit(__doc__)
    for name in make_course(Path(argv[0]), argv[1:]):
        print(f"source/{name}/")


if __name__ == "__main__":
    main(sys.argv[1:])
