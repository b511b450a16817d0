"""The README's walkthrough runs as written: every bash block of "Walkthrough with curl", in one
shell, top to bottom, against a live Gunicorn - and what each `# -> text` comment promises is
in what its command printed. Only the address changes (the test's server has a free port)."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from aura.testing.servers import BIN, ROOT

pytestmark = pytest.mark.gunicorn

SECTION = "## Walkthrough with curl"
ADDRESS = "http://127.0.0.1:8000"  # `make run`'s, as the README writes it
_MARKER = "@@aura-readme-command-{}@@"


def walkthrough_blocks(readme: str) -> list[str]:
    """The bash blocks of the walkthrough section, in order."""
    section = readme.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, re.S)


def commands(block: str) -> list[tuple[str, list[str]]]:
    """(command text, expected fragments) in order: continuation lines joined, and a line holding
    only `# -> ...` attached to the command before it."""
    found: list[tuple[str, list[str]]] = []
    continuing = False
    for line in block.splitlines():
        comment = re.search(r"#\s*->\s*(.*)$", line)
        expected = [part.strip() for part in comment.group(1).split(" -> ")] if comment else []
        if line.strip().startswith("#") and found:  # an expectation on a line of its own
            found[-1][1].extend(expected)
        elif continuing:
            found[-1] = (found[-1][0] + "\n" + line, found[-1][1] + expected)
        elif line.strip():
            found.append((line, expected))
        continuing = line.split("#", 1)[0].rstrip().endswith("\\")
    return found


def test_the_walkthrough_parser_sees_every_command_and_claim():
    readme = (ROOT / "README.md").read_text()
    blocks = walkthrough_blocks(readme)
    steps = [step for block in blocks for step in commands(block)]
    assert len(blocks) >= 6 and len(steps) >= 25
    claims = [text for _, expected in steps for text in expected]
    for text in ("201 CREATED", "Location: /api/v1/workflows/struggle/", '"error":"inactive_user"'):
        assert text in claims
    # The deactivation claim is written in the prose the block demonstrates.
    assert "from the next request on" in readme and "reactivation lets the same tokens work again" in readme


@pytest.mark.slow(20)
def test_the_walkthrough_runs_verbatim_against_a_live_server(gunicorn, server_env):
    server = gunicorn(workers=2)
    steps = [step for block in walkthrough_blocks((ROOT / "README.md").read_text()) for step in commands(block)]
    script = ["set -euo pipefail", "exec 2>&1"]
    for index, (command, _) in enumerate(steps):
        script += [f"echo '{_MARKER.format(index)}'", command.replace(ADDRESS, server.url)]
    env = {**server_env, "PATH": f"{BIN}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-c", "\n".join(script)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    outputs = re.split(r"@@aura-readme-command-\d+@@\n", result.stdout)[1:]
    assert result.returncode == 0 and len(outputs) == len(steps), result.stdout[-3000:]
    for (command, expected), output in zip(steps, outputs, strict=True):
        for text in expected:
            assert text in output, f"README: {command!r}\nprinted {output[:800]!r}\nwithout {text!r}"


def test_the_configuration_table_lists_every_variable_aura_reads():
    """The table is where the typo warnings send people: every variable Aura reads has its row,
    and no row names one it does not read (`GUNICORN_MAX_REQUESTS / ..._JITTER` share a row)."""
    from aura.config import OTHER_KNOWN_VARIABLES, known_variables

    table = (ROOT / "README.md").read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = {
        name
        for line in table.splitlines()
        if line.startswith("| `")
        for name in re.findall(r"`([A-Z_]+)`", line.split("|")[1])
    }
    read = set(known_variables()) - set(OTHER_KNOWN_VARIABLES) - {"WEB_CONCURRENCY"}  # named in GUNICORN_WORKERS's row
    assert rows == read, (sorted(read - rows), sorted(rows - read))
