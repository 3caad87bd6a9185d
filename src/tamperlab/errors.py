"""The exceptions tamperlab raises for bad input; the CLI prints their message as one line and exits 2."""


class TamperlabError(Exception):
    """Base class for errors caused by the user's input or environment, not by a bug."""


class ConfigError(TamperlabError):
    """A spec, YAML file or override is malformed; the message names the field's path."""


class DataError(TamperlabError):
    """A data file is missing, empty or malformed; the message names the file and column."""


class ModelNotFoundError(TamperlabError):
    """A model path does not exist or holds no loadable model; the message says where it looked."""


class JudgeError(TamperlabError):
    """A judge cannot run (server down, classifier missing)."""


class StoreError(TamperlabError):
    """The store is not a tamperlab database or cannot be written."""


class DivergedError(TamperlabError):
    """Training produced a NaN or infinite loss; the run is recorded as diverged."""
