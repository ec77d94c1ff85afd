"""Report problems in user files the way compilers do: ``path:line: message``.

Every failure of a user identifier (at load or at run time) is logged with the file and the
line it happened on, taken from ``SyntaxError.lineno`` or from the deepest traceback frame
that belongs to the user's file (not to the stdlib function it called).
"""

from __future__ import annotations

from types import TracebackType


def located(path: str, line: int | None, message: str) -> str:
    return f"{path}:{line}: {message}" if line else f"{path}: {message}"


def user_line(exc: BaseException, filename: str) -> int | None:
    """The line of ``filename`` that was running when ``exc`` was raised, if any."""
    if isinstance(exc, SyntaxError) and exc.filename == filename:
        return exc.lineno
    line = None
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def describe(exc: BaseException) -> str:
    """``TypeName: message`` (just the type when the message is empty)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class UserCodeError(Exception):
    """A user file failed; ``str()`` is the ``path:line: message`` that gets logged."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        super().__init__(located(path, line, message))
        self.path = path
        self.line = line
        self.message = message


class LoadError(UserCodeError):
    """The file cannot be turned into an identifier (syntax, import, missing ``identify``…)."""


class IdentifierFailed(UserCodeError):
    """``identify()`` raised or returned something that is not a verdict."""


class IdentifierTimeout(IdentifierFailed):
    """``identify()`` ran past its time budget and was interrupted."""


class BudgetExhausted(IdentifierFailed):
    """This connection already used its whole time budget for user identifiers."""
