"""Every error gan_pack raises on purpose, in one small hierarchy. Library code raises these; only
the CLI turns them into a one-line message and the exit code its class names."""


class GanPackError(Exception):
    """A mistake in what the user asked for or gave us (bad file, bad flag)."""

    exit_code = 2


class ConfigError(GanPackError):
    """Settings that cannot work together; the message lists every problem."""


class DataError(GanPackError):
    """A dataset that is missing, truncated or not what it claims to be."""


class CheckpointError(GanPackError):
    """A run folder or checkpoint that cannot be loaded or resumed."""


class ModelError(GanPackError):
    """An ONNX file that is not a gan_pack model, or is used the wrong way."""


class ParityError(GanPackError):
    """An exported model that does not match its reference within its bound; `report` is the
    ParityReport that says by how much, where one was measured."""

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report


class DeviceError(GanPackError):
    """A device or execution provider that was asked for but is absent."""


class RunError(GanPackError):
    """A folder that is not a training run, or a run that cannot be read."""


class OutputPathError(GanPackError):
    """An output path that cannot be written, or a write that failed (disk full, read-only)."""


class VerifyError(GanPackError):
    """A package that is wrong or was tampered with: `ganpack verify` found a problem."""

    exit_code = 1


class Interrupted(GanPackError):
    """Ctrl-C: the message says what was kept and how to continue."""

    exit_code = 130


def in_chain(e: BaseException | None, kind: type, depth: int = 0) -> BaseException | None:
    """The first exception of `kind` in e's chain of causes (libraries such as torch.onnx wrap Ctrl-C
    or a full disk in an error of their own)."""
    if e is None or depth > 20:
        return None
    return e if isinstance(e, kind) else in_chain(e.__cause__ or e.__context__, kind, depth + 1)
