"""The one error compression raises for options or models it cannot work with."""


class CompressionError(Exception):
    """A compression step that cannot run, with a message that says what to change."""
