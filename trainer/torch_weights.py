"""Read a PyTorch legacy (non-zip) `.pth` state dict into NumPy arrays, without PyTorch and
without running any code from the file.

A `.pth` file is a pickle, and a pickle can name any Python callable to run while loading.
This reader's unpickler resolves exactly three names (an ordered dict, PyTorch's tensor
rebuild function and its typed storages) to local, inert stand-ins and refuses every other
global, so a tampered or malicious file fails with `TorchWeightsError` and executes nothing.

The legacy layout (torch.serialization's `_legacy_save`) is five pickles in a row, the magic
number, protocol version, system info, the object itself (tensors refer to storages by key)
and the list of storage keys, followed by each storage's raw bytes: an int64 element count,
then the elements, little-endian.
"""

from __future__ import annotations

import hashlib
import io
import math
import pickle
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from trainer.errors import TrainerError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# PyTorch's typed storages this reader understands, by class name.
STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}

# Far more than any image backbone has; a header claiming more is corrupt or hostile.
MAX_STORAGE_ELEMENTS = 1 << 30


class TorchWeightsError(TrainerError):
    """The file is not a legacy PyTorch state dict this reader accepts."""


@dataclass(frozen=True)
class _StorageType:
    name: str


@dataclass
class _Storage:
    dtype: np.dtype
    size: int
    data: np.ndarray | None = None


@dataclass(frozen=True)
class _TensorRef:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored) -> _TensorRef:
    """Stands in for torch._utils._rebuild_tensor_v2: records where the tensor's data is."""
    if not isinstance(storage, _Storage):
        raise TorchWeightsError("a tensor refers to something that is not a storage")
    shape, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    return _TensorRef(storage, int(storage_offset), shape, stride)


# (module, name) -> what makes the local object that stands in for it, afresh each time it
# is named: pickle's BUILD can set attributes on any object it is given (the class
# OrderedDict itself, a shared stand-in), which would change it for every later load.
# Nothing else resolves.
_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): lambda: lambda *args: OrderedDict(*args),
    ("torch._utils", "_rebuild_tensor_v2"): lambda: lambda *args: _rebuild_tensor(*args),
    ("torch._utils", "_rebuild_tensor"): lambda: lambda *args: _rebuild_tensor(*args),
    **{("torch", name): (lambda name=name: _StorageType(name)) for name in STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, handle: BinaryIO):
        super().__init__(handle)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]()
        except KeyError:
            raise TorchWeightsError(
                f"refused to load {module}.{name}: the file asks to run code that a weights "
                "file never needs (tampered or not a plain state dict)"
            ) from None

    def persistent_load(self, pid):
        # ("storage", type, key, device, element count, view); views are an old form that
        # state dicts of this era do not use.
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise TorchWeightsError(f"unexpected storage reference {pid!r:.80}")
        _, storage_type, key, _location, size, view = pid
        if not isinstance(storage_type, _StorageType) or not isinstance(size, int) or view:
            raise TorchWeightsError("malformed storage reference")
        if not 0 <= size <= MAX_STORAGE_ELEMENTS:
            raise TorchWeightsError(f"storage {key} claims {size} elements")
        key = str(key)
        if key not in self.storages:
            self.storages[key] = _Storage(STORAGE_DTYPES[storage_type.name], size)
        return self.storages[key]


def read_state_dict(path: str | Path, sha256: str | None = None) -> dict[str, np.ndarray]:
    """The file's state dict as {name: array}, every tensor checked against its storage.
    With `sha256`, the bytes read are the ones checked against it, before any is unpickled:
    a file swapped after a check of its own (weights.resolve_weights) is never read."""
    try:
        data = Path(path).read_bytes()  # 17 MB: read once, checked and parsed alike
    except OSError as exc:
        raise TorchWeightsError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise TorchWeightsError(f"{path} changed since its SHA-256 was checked: not read")
    try:
        return _read(io.BytesIO(data))
    except TorchWeightsError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, OverflowError, MemoryError, RecursionError) as exc:  # fmt: skip
        raise TorchWeightsError(f"{path}: not a readable PyTorch state dict: {exc}") from exc


def _read(handle: io.BytesIO) -> dict[str, np.ndarray]:
    if handle.read(2)[:1] != b"\x80":  # every pickle of protocol 2+ starts with PROTO
        raise TorchWeightsError(
            "not a legacy PyTorch file (zip-format .pth files are not supported)"
        )
    handle.seek(0)
    header = _RestrictedUnpickler(handle)
    if header.load() != LEGACY_MAGIC:
        raise TorchWeightsError("wrong magic number: not a PyTorch legacy file")
    if header.load() != LEGACY_PROTOCOL:
        raise TorchWeightsError("unsupported PyTorch serialisation protocol")
    sys_info = header.load()
    if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
        raise TorchWeightsError("only little-endian files are supported")

    unpickler = _RestrictedUnpickler(handle)
    state = unpickler.load()
    if not isinstance(state, dict):
        raise TorchWeightsError("the file holds no state dict (a whole pickled model?)")
    keys = _RestrictedUnpickler(handle).load()
    file_size = len(handle.getbuffer())
    if not isinstance(keys, list) or set(map(str, keys)) != set(unpickler.storages):
        raise TorchWeightsError("the storage list does not match the tensors")
    for key in keys:
        storage = unpickler.storages[str(key)]
        count = int(np.frombuffer(_read_exactly(handle, 8, file_size), "<i8")[0])
        if count != storage.size:
            raise TorchWeightsError(f"storage {key}: {count} elements, header said {storage.size}")
        raw = _read_exactly(handle, count * storage.dtype.itemsize, file_size)
        storage.data = np.frombuffer(raw, storage.dtype)

    arrays = {}
    for name, ref in state.items():
        if not isinstance(name, str) or not isinstance(ref, _TensorRef):
            raise TorchWeightsError(f"entry {name!r:.60} is not a named tensor")
        arrays[name] = _tensor_array(name, ref)
    return arrays


def _tensor_array(name: str, ref: _TensorRef) -> np.ndarray:
    data = ref.storage.data
    if data is None:
        raise TorchWeightsError(f"{name}: its storage has no data")
    if any(s < 0 for s in ref.shape + ref.stride) or ref.offset < 0:
        raise TorchWeightsError(f"{name}: negative shape, stride or offset")
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride, strict=True))
    if 0 not in ref.shape and last >= data.size:
        raise TorchWeightsError(f"{name}: reaches past the end of its storage")
    if math.prod(ref.shape) > data.size:  # stride 0: a few bytes read back as gigabytes
        raise TorchWeightsError(f"{name}: more elements than its storage holds")
    itemsize = data.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        data[ref.offset :],
        shape=ref.shape,
        strides=tuple(s * itemsize for s in ref.stride),
        writeable=False,
    )
    return np.array(view)  # a compact copy that owns its memory


def _read_exactly(handle: BinaryIO, count: int, file_size: int) -> bytes:
    # Checked before reading: a header claiming gigabytes must not allocate them.
    if count > file_size - handle.tell() or len(raw := handle.read(count)) != count:
        raise TorchWeightsError("the file ends before its tensor data does (truncated)")
    return raw
