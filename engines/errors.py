"""Errors that reach the user as one clear line (the CLI prints them without a traceback).

They live with the engines, the bottom layer, so that engines and export raise them without importing the
stream processor; `streamer.errors` re-exports them."""


class UserError(Exception):
    """Bad input or configuration: the message is shown to the user as is, and the program exits non-zero."""


class EngineError(UserError):
    """A model engine could not be loaded or run (missing files, wrong model type, no GPU, ...)."""


def first_line(exc_or_text: BaseException | str) -> str:
    """The first non-blank line of an exception's text (GLib.Error's .message where it has one) or of a
    string, stripped; an exception without text gives its class name, a blank string gives ""."""
    if isinstance(exc_or_text, BaseException):
        text = getattr(exc_or_text, "message", None)
        text = text if isinstance(text, str) and text.strip() else str(exc_or_text)
    else:
        text = str(exc_or_text)
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    if not line and isinstance(exc_or_text, BaseException):
        return type(exc_or_text).__name__
    return line
