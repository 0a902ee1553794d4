"""The one error type model building raises, so callers catch a single thing."""


class ModelError(ValueError):
    """A model that cannot be built or does not fit the data; the message says what to fix.

    A ValueError because, like ConfigError, it means a bad choice of options
    or files, not a bug: the app shows it and the CLI exits with it as one line.
    """
