"""Run the catalogue's programs as subprocesses on free loopback ports, ended by pid afterwards."""
from __future__ import annotations

import pytest
from images_helpers import ProgramProcess


@pytest.fixture
def run_program(tmp_path):
    """run_program(module, *args, env={}) -> ProgramProcess; every one is killed by pid at the end."""
    started: list[ProgramProcess] = []

    def run(module: str, *args: str, env: dict[str, str] | None = None) -> ProgramProcess:
        program = ProgramProcess(module, list(args), env or {},
                                 tmp_path / f"{module}-{len(started)}.log")
        started.append(program)
        return program

    yield run
    for program in started:
        program.stop()
