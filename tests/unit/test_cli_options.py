"""The CLI's serve options: the same before or after ``serve``, refused where they mean nothing."""

from __future__ import annotations

import pytest

from executor.cli import _overrides, _parser, main


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--port", "8080", "serve"], {"HTTP_PORT": 8080}),
        (["serve", "--port", "8080"], {"HTTP_PORT": 8080}),
        (["--port", "8080"], {"HTTP_PORT": 8080}),  # serve is the default command
        (["--skip-migrations", "serve"], {"RUN_MIGRATIONS": False}),
        (["serve", "--skip-migrations"], {"RUN_MIGRATIONS": False}),
        (["--in-memory", "serve", "--json"], {"IN_MEMORY_STORE": True, "LOG_FORMAT": "json"}),
        (
            ["--host", "127.0.0.1", "serve", "--port", "0"],
            {"HTTP_HOST": "127.0.0.1", "HTTP_PORT": 0},
        ),
        (["serve"], {}),
        ([], {}),
    ],
)
def test_serve_options_count_wherever_they_are_given(
    argv: list[str], expected: dict[str, object]
) -> None:
    assert _overrides(_parser().parse_args(argv)) == expected


@pytest.mark.parametrize("command", ["migrate", "check"])
@pytest.mark.parametrize("option", [["--in-memory"], ["--skip-migrations"], ["--port", "1"]])
def test_serve_options_are_refused_for_other_commands(
    command: str, option: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*option, command])
    assert exited.value.code == 2
    assert f"{option[0]} apply to serve only" in capsys.readouterr().err
