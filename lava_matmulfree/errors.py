"""The project's error types: each carries one clear sentence for the user (the CLI prints it, no traceback)."""


class LmfError(Exception):
    """Base class of every error meant for the user."""


class ConfigError(LmfError):
    """A config file or value is wrong (unknown key, wrong type, impossible value)."""


class CheckpointError(LmfError):
    """A checkpoint is missing a tensor, has a mis-shaped or non-finite one, or is malformed."""


class BackendError(LmfError):
    """A backend cannot run here (e.g. Loihi 2 hardware without lava-loihi)."""


class MicrocodeError(LmfError):
    """A malformed microcode program; the message starts with file:line."""


class OutputError(LmfError):
    """An output file or folder cannot be written; the message starts with its path."""


class NumericalError(LmfError):
    """A model's arithmetic overflowed (non-finite values); the message names the largest weight."""
