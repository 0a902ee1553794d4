"""The one error compression raises for options or models it cannot work with."""


class CompressionError(Exception):
    """A compression step that cannot run, with a message that says what to change."""


class FinetuneStopped(CompressionError):
    """A fine-tuning run was stopped before its last epoch (by the user, or a full disk):
    the compression ends stopped, not failed; the message says how to go on."""
