"""Every number that the README quotes from a run appears in a committed file under docs/results/.

The README's results sections lie between ``<!-- results:begin -->`` and
``<!-- results:end -->`` lines. In them, every number (integers and decimals, with or without
``%``, either side of ``±``, digit groups such as ``1 392`` read as one number) must appear in
some file under docs/results/ tracked by git, which ``lmt-bench publish`` writes from a run
(:mod:`lmt.publish`): a number in the README then always comes from a run on record. Not
counted as numbers: inline code and fenced code (commands, paths, settings), link targets,
HTML comments, references (``§6.1``, ``Fig. 3``, ``Table 1``, ``Thm 2``, ...), versions
(``2.14.1``), years (1900–2099), and digits inside words (``L2``, ``WRN-16-4``, ``seed0``).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pytest

from tests.conftest import REPO

BEGIN = "<!-- results:begin -->"
END = "<!-- results:end -->"
RESULTS = "docs/results"

_GROUP = "[ \u00a0\u202f\u2009]"  # a space, no-break space, narrow no-break space or thin space between digit groups
_NUMBER = re.compile(
    rf"(?<![\w.])(?<![A-Za-z0-9]-)(\d{{1,3}}(?:{_GROUP}\d{{3}})+(?![\d.])|\d+(?:\.\d+)?)(?![\w])"
)
_BLANKED = [
    re.compile(r"```.*?```", re.S),  # fenced code
    re.compile(r"`[^`]*`"),  # inline code: commands, paths, settings
    re.compile(r"<!--.*?-->", re.S),  # HTML comments (the markers themselves)
    re.compile(r"\]\([^)]*\)"),  # link targets
    re.compile(r"https?://\S+"),  # bare URLs
    re.compile(r"§\s*\d+(?:\.\d+)*"),  # section references
    re.compile(r"\b(?:Fig(?:ure)?|Tab(?:le)?|Thm|Theorem|Cor(?:ollary)?|Prop(?:osition)?|Eq|Sec(?:tion)?|Lemma|Alg"
               r"(?:orithm)?|Def(?:inition)?)s?\.?\s*\d+(?:\.\d+)*"),
    re.compile(r"\b\d+\.\d+\.\d+(?:\.\d+)*\b"),  # versions
    re.compile(r"(?<![\w.])(?:19|20)\d\d(?![\w.]|\s*%)"),  # years
]


def _blank(text: str) -> str:
    """``text`` with every ignored span replaced by spaces (newlines kept, so lines still count)."""
    for pattern in _BLANKED:
        text = pattern.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), text)
    return text


def _normal(number: str) -> str:
    return re.sub(_GROUP, "", number)


def results_sections(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of each results section of a README's ``text``; an unclosed,
    nested or stray marker is an error."""
    sections, start = [], None
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip() == BEGIN:
            assert start is None, f"README.md:{number}: {BEGIN} inside a results section opened at line {start}"
            start = number
        elif line.strip() == END:
            assert start is not None, f"README.md:{number}: {END} without {BEGIN}"
            sections.append((start, "\n".join(text.splitlines()[start - 1:number])))
            start = None
    assert start is None, f"README.md:{start}: {BEGIN} never closed by {END}"
    return sections


def quoted_numbers(text: str) -> list[tuple[int, str, str]]:
    """(line number, number, line) of every number in the results sections of ``text``."""
    lines = text.splitlines()
    found = []
    for first, section in results_sections(text):
        for offset, line in enumerate(_blank(section).splitlines()):
            for match in _NUMBER.finditer(line):
                found.append((first + offset, _normal(match.group(1)), lines[first + offset - 1]))
    return found


def numbers_in(texts: Iterable[str]) -> set[str]:
    """Every number written in ``texts`` (each digit group also alone), normalised like the README's."""
    known: set[str] = set()
    for text in texts:
        for match in re.finditer(rf"\d{{1,3}}(?:{_GROUP}\d{{3}})+(?![\d.])|\d+(?:\.\d+)?", text):
            known.add(_normal(match.group()))
        known.update(re.findall(r"\d+", text))
    return known


def unquotable(text: str, known: set[str]) -> list[str]:
    """A message for each number of the results sections of ``text`` that is not in ``known``."""
    return [f"README.md:{line}: {number} is in no file under {RESULTS}/: {content.strip()}"
            for line, number, content in quoted_numbers(text) if number not in known]


def committed_results(repo: Path = REPO) -> dict[str, str]:
    """Path → text of every text file under docs/results/ tracked by git."""
    listed = subprocess.run(["git", "ls-files", "-z", "--", RESULTS], cwd=repo, capture_output=True, text=True,
                            check=True).stdout
    texts = {}
    for name in filter(None, listed.split("\0")):
        try:
            texts[name] = (repo / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue  # figures
    return texts


def test_the_readme_marks_its_results_sections() -> None:
    sections = results_sections((REPO / "README.md").read_text())
    assert sections, f"README.md has no results section ({BEGIN} … {END})"


def test_every_number_of_the_readme_results_sections_is_in_a_committed_results_file() -> None:
    if not (REPO / RESULTS).is_dir():
        pytest.skip(f"{RESULTS}/ does not exist yet: publish a run with `lmt-bench publish results` and commit it")
    texts = committed_results()
    assert texts, f"no file under {RESULTS}/ is committed"
    problems = unquotable((REPO / "README.md").read_text(), numbers_in(texts.values()))
    assert not problems, "\n".join(problems)


def test_a_number_in_no_results_file_fails_with_its_line() -> None:
    readme = "\n".join([
        "# Title 2024",
        "<!-- results:begin -->",
        "LMT certifies 70.1 % at 0.5 (§6.1, Fig. 4, Table 1, Cohen et al. 2019; torch 2.14.1),",
        "its clean accuracy is 91.3 ± 0.4 %, in 11 min 37 s on WRN-16-4 with L2 [file](docs/r7/x.md) `c = 9`.",
        "A madeup 42.7 % here, and 1 392 operations.",
        "<!-- results:end -->",
        "Outside: 99.9 %.",
    ])
    known = numbers_in([
        "| lmt | 91.3 ± 0.4 % | 70.1 % | 0.5 |\n- wall time: 697.0 s (11 min 37 s)\n| 1 392 |",
    ])
    assert unquotable(readme, known) == [
        "README.md:5: 42.7 is in no file under docs/results/: A madeup 42.7 % here, and 1 392 operations.",
    ]
    assert unquotable(readme.replace("1 392", "1 393"), known)[-1].startswith("README.md:5: 1393 is in no file")


def test_numbers_of_a_published_file_pass(tmp_path) -> None:
    from lmt.publish import publish
    from tests.test_publish import make_results

    page = publish(make_results(tmp_path / "results"), out=tmp_path / "out")[0]
    readme = f"{BEGIN}\nLMT: 91.3 % clean, 70.1 % certified at 0.5; 698.5 s of wall time (11 min 38 s).\n{END}\n"
    assert unquotable(readme, numbers_in([page.read_text()])) == []


@pytest.mark.parametrize("bad, message", [
    (f"{BEGIN}\n1\n", "never closed"),
    (f"1\n{END}\n", "without"),
    (f"{BEGIN}\n{BEGIN}\n{END}\n", "inside a results section"),
])
def test_unbalanced_markers_are_errors(bad: str, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        results_sections(bad)
