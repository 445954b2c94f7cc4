"""Errors that reach the user as one clear line (the CLI prints them without a traceback)."""


class UserError(Exception):
    """Bad input or configuration: the message is shown to the user as is, and the program exits non-zero."""


class EngineError(UserError):
    """A model engine could not be loaded or run (missing files, wrong model type, no GPU, ...)."""
