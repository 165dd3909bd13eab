"""Errors with messages meant for users (the CLI and the app print them without a traceback)."""


class LENeRFError(Exception):
    """Base class of every error that is the user's input or environment, not a bug."""


class InputError(LENeRFError, ValueError):
    """A tensor, file or argument given by the user has the wrong shape, type or value."""


class CheckpointError(LENeRFError):
    """A checkpoint file is missing, unreadable, or not what it claims to be."""


class UnsafePickleError(CheckpointError):
    """A pickle references a global outside the allow-list; nothing from it was executed."""


class NotAvailableError(LENeRFError):
    """A model is not available offline (not downloaded / not in the cache)."""
