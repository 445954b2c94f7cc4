"""Errors that reach the user as one clear line (the CLI prints them without a traceback).

Defined in `engines.errors` (the engines and the exporters raise them too); re-exported here for the stream
processor's modules.
"""

from engines.errors import EngineError, UserError, first_line

__all__ = ["EngineError", "UserError", "first_line"]
