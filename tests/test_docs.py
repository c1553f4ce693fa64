"""Every command a document shows runs as written, dry: README's as a user types them (`--cfg job` for the
Hydra commands, `--help` for the others), the docs' composed in-process (the same check, faster). And no link in
the documents leaves the repository."""
import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from improve.config.compose import compose_config
from improve.config.paths import PROJECT_ROOT

from .conftest import run_cli

HYDRA = {"improve": "config", "improve.train": "train"}  # command -> the config it composes
DOCS = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]


def commands(doc: Path):
    """(module, arguments) of each `python -m improve...` line in the document's bash blocks, comments dropped."""
    for block in re.findall(r"```bash\n(.*?)```", doc.read_text(), re.S):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words[:2] == ["python", "-m"] and words[2].split(".")[0] == "improve":
                yield words[2], words[3:]


def dry(module: str, args):
    """The arguments that check the command without running it."""
    if module in HYDRA:
        if "-m" in args:  # a sweep: its first job (Hydra allows --cfg with one run only)
            args = [a.split("=", 1)[0] + "=" + a.split("=", 1)[1].split(",")[0] if "=" in a else a
                    for a in args if a != "-m"]
        return [*args, "--cfg", "job"]
    if module == "improve.bench":
        return [*args[:1], "--help"]
    return ["--help"]


README = list(commands(PROJECT_ROOT / "README.md"))


def test_readme_shows_the_main_commands():
    shown = {m for m, _ in README}
    assert {"improve", "improve.train", "improve.data", "improve.predict", "improve.export", "improve.report",
            "improve.bench"} <= shown


@pytest.mark.parametrize("module,args", README, ids=[" ".join([m, *a])[:60] for m, a in README])
def test_a_readme_command_runs_as_written(module, args):
    proc = run_cli(module, *dry(module, args), timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip()
    if module in HYDRA:  # the composed config holds every value the command line set
        for a in args:
            if "=" in a and not a.startswith(("hydra.", "-")) and "." in a.split("=")[0] and "," not in a:
                assert a.split("=")[0].split(".")[-1] in proc.stdout


def _help_exits_cleanly(module: str, args) -> str:
    from importlib import import_module

    code_of = {"improve.bench": "improve.bench.cli", "improve.data": "improve.data.layout"}  # packages' __main__
    main = import_module(code_of.get(module, module)).main
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            code = main(args)
        except SystemExit as stop:
            code = stop.code
    assert code in (0, None), f"{module} {args}: exit {code}"
    return out.getvalue()


@pytest.mark.parametrize("doc", [d for d in DOCS if d.name != "README.md"], ids=lambda d: d.name)
def test_every_command_in_the_docs_composes_or_prints_its_help(doc):
    for module, args in commands(doc):
        dried = dry(module, args)
        if module in HYDRA:
            overrides = [a for a in dried[:-2] if not a.startswith("hydra.")]  # hydra.* settle the app, not the job
            cfg = compose_config(HYDRA[module], overrides)
            assert cfg.dataset.name, f"{doc.name}: python -m {module} {' '.join(args)}"
        else:
            assert _help_exits_cleanly(module, dried).strip(), f"{doc.name}: python -m {module} {' '.join(args)}"


def test_no_link_in_the_documents_leaves_the_repository():
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)]+)\)", doc.read_text()):
            if target.startswith(("http://", "https://", "#")):
                continue
            path = (doc.parent / target.split("#")[0]).resolve()
            assert path.is_relative_to(PROJECT_ROOT) and path.exists(), f"{doc.name}: broken link {target}"


def test_readme_stays_short():
    assert len((PROJECT_ROOT / "README.md").read_text().splitlines()) <= 250
