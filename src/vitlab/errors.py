"""Errors a user can act on. Each carries a one-paragraph message; the CLI prints it without a traceback."""


class VitlabError(Exception):
    """Base of every error vitlab reports to a user (exit code 2 unless a run failed)."""


class PresetError(VitlabError):
    """A preset or override is invalid: YAML syntax, unknown key, wrong type, impossible combination."""


class DataError(VitlabError):
    """A dataset is missing or malformed; the message says how to get it."""


class ModelError(VitlabError):
    """A model cannot be built, e.g. pretrained weights are not on disk."""


class CannotStart(VitlabError):
    """A queue's runs need data, weights or a GPU that are not here; the message names each, how to get it and
    the runs that need it."""


class StoreError(VitlabError):
    """The run store cannot be written (read-only directory, disk full, unsafe name)."""
