"""Project errors. The CLI turns them into one line on stderr and an exit code."""


class LlmplanError(Exception):
    """Something the user typed or supplied is wrong (exit code 2)."""

    exit_code = 2


class RunError(Exception):
    """The run itself failed: a device error, an interrupted measurement (exit code 1)."""

    exit_code = 1
