"""NVlabs network pickles (`network-snapshot-*.pkl` of stylegan2-ada-pytorch and stylegan3) read as
data, never as code.

`pickle.load` on such a file imports the Python source that the file itself carries and runs it: the
networks are saved through NVlabs' persistence format, each one a call of
`torch_utils.persistence._reconstruct_persistent_obj(meta)` whose `meta` holds the class's module
source, its name and the instance's state. Here a restricted unpickler resolves only the handful of
globals such a file needs, each to a function of ours that builds plain data:

- a persistent object becomes a `PersistentObject` record (class name, state); its source is kept
  as text to show and hash, and never compiled, imported or run;
- tensors come from their storage bytes through torch's weights-only loader, and are viewed with
  bounds checked by torch; parameters are plain tensors;
- NVlabs' `EasyDict` is a dict; numpy scalars and arrays are decoded from their bytes for a short
  list of numeric dtypes;
- anything else (a `__reduce__` payload naming os.system, builtins.exec, ...) stops the load in one
  line naming it, before it is called.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import stat
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gan_pack.errors import CheckpointError

MAX_PICKLE_BYTES = 2 << 30
PERSISTENCE = ("torch_utils.persistence", "_reconstruct_persistent_obj")
NUMPY_DTYPES = frozenset("f2 f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1".split())


@dataclass
class PersistentObject:
    """One object of NVlabs' persistence format, as data: what class it was, and its state."""

    class_name: str
    state: dict
    source_sha256: str = ""
    source_lines: int = 0

    @property
    def modules(self) -> dict:
        return dict(self.state.get("_modules") or {})

    def tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Its parameters and buffers and those of every module inside, as a state dict."""
        out = {}
        for group in ("_parameters", "_buffers"):
            for name, value in (self.state.get(group) or {}).items():
                if value is not None:
                    out[prefix + name] = value
        for name, child in self.modules.items():
            if isinstance(child, PersistentObject):
                out.update(child.tensors(f"{prefix}{name}."))
        return out

    def attribute(self, name: str, default=None):
        return plain(self.state.get(name, default))


class Refused(pickle.UnpicklingError):
    """Something a network pickle does not hold: the load stops before it is built or called."""


class EasyDict(dict):
    """NVlabs' dnnlib.EasyDict, as the dict it is."""

    def __setstate__(self, state) -> None:
        if state:
            raise Refused("an EasyDict with attributes")


class DtypeRecord:
    def __init__(self, name, align=False, copy=True):
        self.name, self.order = str(name), "|"

    def __setstate__(self, state) -> None:
        if not isinstance(state, tuple) or len(state) < 2 or state[1] not in ("<", ">", "|", "="):
            raise Refused("a numpy dtype of an unknown form")
        self.order = state[1]

    def dtype(self) -> np.dtype:
        if self.name not in NUMPY_DTYPES:
            raise Refused(f"a numpy value of dtype {self.name[:20]!r}")
        return np.dtype(self.name).newbyteorder(self.order if self.order in "<>" else "=")


class ArrayRecord:
    """A numpy array, decoded from its bytes once pickle hands over its state."""

    def __init__(self, *args):
        self.value: np.ndarray | None = None

    def __setstate__(self, state) -> None:
        _, shape, dtype, fortran, raw = state
        if not isinstance(dtype, DtypeRecord) or not isinstance(raw, bytes) or not isinstance(shape, tuple):
            raise Refused("a numpy array that is not plain numbers")
        values = np.frombuffer(raw, dtype.dtype())
        if int(np.prod(shape, dtype=np.float64)) != values.size:
            raise Refused("a numpy array whose bytes do not fit its shape")
        self.value = values.reshape(shape, order="F" if fortran else "C").copy()


def numpy_scalar(dtype, raw):
    if not isinstance(dtype, DtypeRecord) or not isinstance(raw, bytes):
        raise Refused("a numpy scalar that is not a number")
    values = np.frombuffer(raw, dtype.dtype())
    if values.size != 1:
        raise Refused("a numpy scalar of the wrong size")
    return values[0].item()


def plain(value):
    """A state value as Python data: arrays as numpy arrays, all else as it is."""
    return value.value if isinstance(value, ArrayRecord) else value


def persistent_object(meta) -> PersistentObject:
    """What NVlabs' _reconstruct_persistent_obj is called with, kept as data: the source is hashed."""
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict):
        raise Refused("a persistent object that is not a class instance")
    name, source = meta.get("class_name"), meta.get("module_src", "")
    if not isinstance(name, str) or not name.isidentifier() or not isinstance(source, str):
        raise Refused("a persistent object without a class name")
    return PersistentObject(name, dict(meta["state"]), hashlib.sha256(source.encode("utf-8", "replace")).hexdigest(),
                            source.count("\n") + 1)


def storage_from_bytes(raw):
    """torch.storage._load_from_bytes, with torch's weights-only loader (no code runs)."""
    if not isinstance(raw, bytes):
        raise Refused("a tensor storage that is not bytes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        storage = torch.load(io.BytesIO(raw), weights_only=True)
    if not isinstance(storage, torch.storage.TypedStorage):
        raise Refused("a tensor storage that holds something else")
    return storage


def rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    ints = all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in (offset, *size, *stride))
    if not isinstance(storage, torch.storage.TypedStorage) or not ints or len(size) != len(stride):
        raise Refused("a tensor of an unknown form")
    # the last element it views must lie in its storage (torch would grow the storage instead)
    last = offset + sum((n - 1) * step for n, step in zip(size, stride)) if all(size) else -1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            elements = storage.untyped().nbytes() // storage.element_size()
            if last >= elements:
                raise Refused(f"a tensor outside its storage (element {last:,} of {elements:,})")
            return torch.empty(0, dtype=storage.dtype).set_(storage.untyped(), offset, tuple(size), tuple(stride))
    except RuntimeError as e:
        raise Refused(f"a tensor torch cannot view ({str(e)[:80]})") from None


def rebuild_parameter(data, requires_grad=False, hooks=None, *state):
    if not isinstance(data, torch.Tensor):
        raise Refused("a parameter that is not a tensor")
    return data


ALLOWED = {
    PERSISTENCE: persistent_object,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("torch.storage", "_load_from_bytes"): storage_from_bytes,
    ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): rebuild_parameter,
    **{(f"numpy.{core}.multiarray", "scalar"): numpy_scalar for core in ("core", "_core")},
    **{(f"numpy.{core}.multiarray", "_reconstruct"): ArrayRecord for core in ("core", "_core")},
    ("numpy", "dtype"): DtypeRecord,
    ("numpy", "ndarray"): ArrayRecord,
}


class DataOnlyUnpickler(pickle.Unpickler):
    """An unpickler that resolves only ALLOWED, to data builders of ours."""

    def find_class(self, module: str, name: str):
        found = ALLOWED.get((module, name))
        if found is None:
            raise Refused(f"it names {module}.{name}, which a network pickle does not hold; "
                                         f"nothing of it was run")
        return found

    def persistent_load(self, pid):
        raise Refused("it refers to data outside itself (persistent ids)")


def read_network_pickle(path: str | Path) -> dict:
    """The top-level dict of an NVlabs snapshot (G, D, G_ema, ...), its networks as PersistentObjects.
    CheckpointError if the file is not one, or names anything beyond ALLOWED."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise CheckpointError(f"{path} cannot be read ({e.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise CheckpointError(f"{path} is not a regular file; give a network pickle (network-snapshot-*.pkl)")
        if info.st_size > MAX_PICKLE_BYTES:
            raise CheckpointError(f"{path} is {info.st_size:,} bytes, over the {MAX_PICKLE_BYTES:,} a network "
                                  f"pickle may take")
        data = f.read()
    try:
        result = DataOnlyUnpickler(io.BytesIO(data)).load()
    except Refused as e:
        raise CheckpointError(f"{path} was refused: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError, MemoryError,
            RecursionError, OverflowError, RuntimeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not a readable network pickle ({type(e).__name__}: "
                              f"{' '.join(str(e).split())[:120]})") from None
    if not isinstance(result, dict) or not any(isinstance(v, PersistentObject) for v in result.values()):
        raise CheckpointError(f"{path} is a pickle but not an NVlabs network snapshot (no persistent networks in "
                              f"a top-level dict)")
    return result


@dataclass
class NetworkChoice:
    """The network of a snapshot that is exported, and which others it held."""

    name: str
    network: PersistentObject
    others: list[str] = field(default_factory=list)


def choose_network(snapshot: dict, path: Path, name: str = "G_ema") -> NetworkChoice:
    networks = sorted(k for k, v in snapshot.items() if isinstance(v, PersistentObject))
    if name not in networks:
        raise CheckpointError(f"{path} holds no network {name!r} (it holds: {', '.join(map(str, networks))}); "
                              f"choose one with --network")
    return NetworkChoice(name, snapshot[name], [n for n in networks if n != name])
