"""The one project exception: a message for the user and a hint on what to do."""

from __future__ import annotations


class HwprofError(Exception):
    """A problem with the user's input or environment that the user can fix.

    The CLI prints it as one line on stderr and exits with code 2.

    Args:
        message: What is wrong, naming the offending value or file.
        hint: What to do about it.
    """

    exit_code = 2

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """Render message and hint as a single line."""
        text = self.message.rstrip(".")
        if self.hint:
            text += f"; {self.hint}"
        return " ".join(text.split())
