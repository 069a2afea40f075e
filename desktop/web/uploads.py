"""What `ewaste-web` does with uploads, apart from the page: the photos in them (each zip
unpacked safely and within limits), each named as the user knows it, and the server's
folders that hold them, removed in time."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
import threading
import time
import zipfile
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from desktop.core.discovery import is_clutter
from desktop.core.file_placing import numbered
from desktop.core.preprocessing import is_photo_file
from desktop.core.results import Prediction
from desktop.core.safe_files import fitting_name, remove_files
from desktop.core.wording import plural

# Gradio's copies of uploads and downloads: checked hourly, removed after a day (the page's
# CSV link lives that long), and all removed when the server stops.
CACHE_CHECK_SECONDS, CACHE_KEEP_SECONDS = 3600, 86400
# Photos unpacked from one upload's zips together (not a zip each: twenty small zips of
# tiny PNG bombs would each take their own share of a day's CPU and disk).
MAX_ZIP_MEMBERS = 5_000
MAX_ZIP_BYTES = 500 * 1024 * 1024  # unpacked: a zip bomb stops here
COPY_CHUNK = 1 << 20  # a member is copied a piece at a time, never held whole in memory
# The zip's index (read whole by zipfile): 16 MB lists some 100,000 files, twenty times the
# photos a zip may hold; a 179 MB upload listing 3.5 million took 160 s and 1.8 GB.
MAX_ZIP_INDEX_BYTES = 16 * 1024 * 1024
# Archives of photos a worker may send that are not zips: an error row says to send a zip.
OTHER_ARCHIVES = (".rar", ".7z", ".tar", ".tar.gz", ".tgz", ".gz", ".bz2", ".xz")
KEPT_WORKDIRS = 8  # recent requests whose photos and CSV stay on disk
# An upload a phone cut off (its tab closed, the Wi-Fi gone) leaves Gradio's temporary file
# of it, up to its whole size, at the top of the upload folder until the server stops: a
# live upload writes to its file every moment, so one untouched this long is dead.
DEAD_UPLOAD_SECONDS = 600
SWEEP_SECONDS = 60
_WORKDIRS: list[Path] = []


@dataclass
class Upload:
    """One upload, ready to classify: the photos' paths on the server, the name each is
    shown under, error rows for what could not be unpacked, and the zip members skipped as
    not photos."""

    paths: list[str] = field(default_factory=list)
    # The user's name for each path, in the same order: Gradio stores two uploads with the
    # same bytes at one path, so a path cannot be the key.
    names: list[str] = field(default_factory=list)
    failed: list[Prediction] = field(default_factory=list)
    skipped: int = 0
    # Every row's name (photos and failures), in the order the files were sent: the table
    # and the CSV list them so, a damaged zip where it was, not after every photo.
    order: list[str] = field(default_factory=list)

    def in_order(self, rows: Sequence[Prediction]) -> list[Prediction]:
        """`rows` (the photos' rows, named by `names`, and `failed`) in upload order."""
        by_name = {row.path: row for row in rows}
        return [by_name[name] for name in self.order]


def distinct_names(names: Sequence[str], reserved: Collection[str] = ()) -> list[str]:
    """Each name as it is, but a later one of a name already given reads "IMG_1 (2).jpg",
    with the lowest number whose name is none of `names` nor `reserved`: two cameras'
    IMG_1.jpg stay two rows a person can tell apart, and a number never takes the name of
    another photo the user sent ("IMG_1 (2).jpg" is a camera's name too)."""
    taken = {*names, *reserved}
    given: set[str] = set()
    next_number: dict[str, int] = {}  # per name: numbers below are given (thousands alike)
    distinct = []
    for name in names:
        candidate, number = name, next_number.get(name, 2)
        while candidate in given or (candidate != name and candidate in taken):
            candidate, number = str(numbered(PurePosixPath(name), number)), number + 1
        next_number[name] = number
        given.add(candidate)
        distinct.append(candidate)
    return distinct


@dataclass
class _Found:
    """An upload's rows in the order they are found, each under the name it came with
    (named apart only once all are known), and the count of files skipped."""

    rows: list[tuple[str, str | None, str]] = field(default_factory=list)  # name, path, error
    skipped: int = 0
    unpacked: int = 0  # photos unpacked from the upload's zips so far
    unpacked_bytes: int = 0

    def add(self, path: str, name: str) -> None:
        self.rows.append((name, path, ""))

    def fail(self, name: str, reason: str) -> None:
        self.rows.append((name, None, reason))

    def upload(self, reserved: Collection[str]) -> Upload:
        upload = Upload(skipped=self.skipped)
        names = distinct_names([name for name, _, _ in self.rows], reserved)
        upload.order = names
        for name, (_, path, reason) in zip(names, self.rows, strict=True):
            if path is None:
                upload.failed.append(Prediction.failed(name, reason))
            else:
                upload.paths.append(path)
                upload.names.append(name)
        return upload


def sent_name(orig_name: object, path: str) -> str:
    """The name a file was uploaded under, as the user knows it, or else the name of
    Gradio's copy at `path`. The browser's word, so only ever shown, never part of a path;
    a name with folders (not what a browser sends) shows its last part."""
    name = orig_name.rsplit("/", 1)[-1] if isinstance(orig_name, str) else ""
    return Path(path).name if name in ("", ".", "..") else name


def photos_in(uploads: Sequence[str], folder: Path, names: Sequence[str] = ()) -> Upload:
    """The uploaded photos, each zip unpacked (photo members only, safely) into folder;
    other files are counted as skipped, as in a folder given to ewaste-classify. `names`:
    the name each was uploaded under (sent_name), by default its path's own."""
    found = _Found()
    sent = list(names) or [Path(path).name for path in uploads]
    # The files' own names apart first: a zip's members are named after the zip's.
    for number, (path, name) in enumerate(zip(uploads, distinct_names(sent), strict=True)):
        # By its name only: a .docx, .xlsx or .apk is a zip inside, and its pictures are
        # a document's, not photos the user sent.
        is_zip = name.lower().endswith(".zip")
        if is_zip and zipfile.is_zipfile(path):
            try:
                if zip_index_bytes(path) > MAX_ZIP_INDEX_BYTES:
                    reason = f"not unpacked: it lists far more than {MAX_ZIP_MEMBERS} files"
                    found.fail(name, reason)
                    continue
                _unpack(path, name, folder / f"zip{number}", found)
            except (zipfile.BadZipFile, OSError) as exc:  # its index is broken
                found.fail(name, f"not a readable zip: {exc}")
        elif is_zip:
            found.fail(name, "not a readable zip (damaged or cut)")
        elif is_photo_file(name):
            found.add(path, name)
        elif name.lower().endswith(OTHER_ARCHIVES):  # photos in it, likely: said, not skipped
            found.fail(name, "not unpacked: only .zip archives are; send its photos, or a zip")
        else:  # a folder's notes or receipts, skipped and counted as ewaste-classify does
            found.skipped += 1
    return found.upload(reserved=sent)


def zip_index_bytes(path: str) -> int:
    """The size of the index (central directory) that zipfile reads whole into memory, read
    before it does, the way it will (its own reader of the end records, ZIP64 included: a
    reading of our own could be shown a decoy record). 0 without an end record."""
    with open(path, "rb") as handle:
        end = zipfile._EndRecData(handle)  # private, but the very reading zipfile does
    return 0 if end is None else end[zipfile._ECD_SIZE]


def _is_clutter(member: zipfile.ZipInfo) -> bool:
    parts = PurePosixPath(member.filename).parts
    return any(is_clutter(part) for part in parts if part not in (".", ".."))


def _unpack(archive: str, zip_name: str, folder: Path, found: _Found) -> None:
    folder.mkdir(parents=True)
    with zipfile.ZipFile(archive) as bundle:
        # A zip made on a Mac carries __MACOSX/._photo.jpg twins: the system's, not photos.
        members = [m for m in bundle.infolist() if not m.is_dir() and not _is_clutter(m)]
        if not members:  # said, or the zip would leave no trace in the results
            found.fail(zip_name, "an empty zip: it holds no files")
            return
        photos = [m for m in members if is_photo_file(m.filename)]
        inner = [m for m in members if m.filename.lower().endswith(".zip")]
        for member in inner:  # an error row, not a "skipped" the worker would not look into
            reason = "a zip inside the zip is not opened: upload it on its own"
            found.fail(f"{zip_name}:{member.filename}", reason)
        found.skipped += len(members) - len(photos) - len(inner)
        for index, member in enumerate(photos):
            full = found.unpacked_bytes + member.file_size > MAX_ZIP_BYTES
            if found.unpacked >= MAX_ZIP_MEMBERS or full:
                left = plural(len(photos) - index, "photo")
                limit = f"{MAX_ZIP_MEMBERS} photos and {MAX_ZIP_BYTES // 2**20} MB"
                reason = f"{left} not unpacked: one upload's zips hold at most {limit}"
                found.fail(zip_name, reason)
                break
            found.unpacked += 1
            found.unpacked_bytes += member.file_size
            name = f"{zip_name}:{member.filename}"
            # Never the member's own path: "../../x.jpg" must not leave the folder. Its name
            # kept to a length the disk takes, in bytes: 120 Cyrillic letters are 240.
            own = Path(member.filename)
            target = folder / fitting_name(f"{index:05d}-{own.stem}", own.suffix)
            try:
                with bundle.open(member) as source, target.open("wb") as sink:
                    _copy_declared(source, sink, member.file_size)
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError) as exc:
                # Corrupt, encrypted or compressed in a way zipfile cannot read.
                found.fail(name, f"cannot unpack from the zip: {exc}")
                continue
            found.add(str(target), name)


def _copy_declared(source: BinaryIO, sink: BinaryIO, size: int) -> None:
    """Copy `size` bytes, the member's declared size, a piece at a time; a member that
    inflates past it (a zip bomb lying about its size) is cut there. Read one byte past
    it, so that zipfile reaches the end of the data and checks its CRC."""
    left = size + 1
    while left > 0:
        chunk = source.read(min(COPY_CHUNK, left))
        if not chunk:
            break
        sink.write(chunk[: max(0, left - 1)])
        left -= len(chunk)


def new_workdir() -> Path:
    """A folder for one request's photos and CSV, named with this server's PID; those last
    changed over a day ago go, and the oldest beyond KEPT_WORKDIRS, so a server running for
    months does not fill its disk (the CSV link lives that long)."""
    folder = Path(tempfile.mkdtemp(prefix=f"ewaste-web-{os.getpid()}-"))
    _WORKDIRS.append(folder)
    day_ago = time.time() - CACHE_KEEP_SECONDS
    for old in [workdir for workdir in _WORKDIRS if _changed_before(workdir, day_ago)]:
        _WORKDIRS.remove(old)
        shutil.rmtree(old, ignore_errors=True)
    while len(_WORKDIRS) > KEPT_WORKDIRS:
        shutil.rmtree(_WORKDIRS.pop(0), ignore_errors=True)
    return folder


def _changed_before(folder: Path, moment: float) -> bool:
    try:
        return folder.stat().st_mtime < moment
    except OSError:  # gone already
        return True


def workdir_again(folder: Path) -> None:
    """A request's folder that new ones rotated away, made again (a batch re-labelled), to
    be removed with the others when the server stops."""
    if not folder.is_dir():
        folder.mkdir(parents=True)
        _WORKDIRS.append(folder)


def remove_workdirs() -> None:
    """Every request's folder, when the server stops."""
    while _WORKDIRS:
        shutil.rmtree(_WORKDIRS.pop(), ignore_errors=True)


def own_upload_folder() -> Path:
    """A folder of this server's own for Gradio's copies of uploads and downloads, inside
    the one GRADIO_TEMP_DIR names (or the system's temporary folder), removed whole when
    the server stops: Gradio's own clean-up skips an upload still being classified, and it
    leaves an empty temporary file behind for every file uploaded."""
    root = os.environ.get("GRADIO_TEMP_DIR") or None  # set but empty: not the working folder
    if root:
        Path(root).mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"ewaste-web-uploads-{os.getpid()}-", dir=root))
    os.environ["GRADIO_TEMP_DIR"] = str(folder)  # read when the page is built and served
    return folder


def remove_dead_uploads(folder: Path) -> None:
    """Delete the files at the top of `folder`, this server's upload folder, that it no
    longer holds open and nothing has written to for DEAD_UPLOAD_SECONDS: uploads whose
    phone closed the connection midway, which filled the disk until every phone got "HTTP
    500". Finished uploads are in folders below (Gradio's day); the files of an upload
    still arriving stay open until all of it has, its first photos long unwritten."""
    dead_since = time.time() - DEAD_UPLOAD_SECONDS
    held = _files_held_open()
    remove_files(
        folder,
        lambda _name: True,  # every file at the top: Gradio's, whatever it named them
        lambda info: info.st_mtime < dead_since and (info.st_dev, info.st_ino) not in held,
    )


def _files_held_open() -> set[tuple[int, int]]:
    """(device, inode) of every file this process has open, by its descriptors in /dev/fd
    (Linux, macOS). Windows refuses to delete an open file anyway: nothing is listed."""
    held = set()
    with contextlib.suppress(OSError):
        for name in os.listdir("/dev/fd"):
            with contextlib.suppress(OSError, ValueError):
                info = os.fstat(int(name))
                held.add((info.st_dev, info.st_ino))
    return held


def keep_removing_dead_uploads(folder: Path) -> threading.Event:
    """Remove dead uploads from `folder` every SWEEP_SECONDS, on a thread of its own (a
    full disk refuses every request, so none could do it), until the event returned is set."""
    stop = threading.Event()

    def sweep() -> None:
        while not stop.wait(SWEEP_SECONDS):
            remove_dead_uploads(folder)

    threading.Thread(target=sweep, name="ewaste-web-sweep", daemon=True).start()
    return stop


# The folders above, by the PID of the server that made them.
_SERVER_FOLDER = re.compile(r"ewaste-web-(?:uploads-)?(\d+)-\w+")


def remove_left_behind() -> None:
    """The folders of servers that never cleaned up (killed, or a power cut): those in
    the folders own_upload_folder and new_workdir use whose server, by the PID in their
    name, no longer runs. Never a running server's: it removes its own when it stops.
    Called at start, before this server makes its own."""
    temporary = Path(tempfile.gettempdir())
    for root in {temporary, Path(os.environ.get("GRADIO_TEMP_DIR") or temporary)}:
        try:
            entries = list(root.iterdir())
        except OSError:  # not made yet
            continue
        for entry in entries:
            found = _SERVER_FOLDER.fullmatch(entry.name)
            if found and _gone(int(found[1])) and _ours(entry):
                shutil.rmtree(entry, ignore_errors=True)


def _gone(pid: int) -> bool:
    """Whether the server of that PID no longer runs. Our own PID, asked before this server
    made any folder, was a predecessor's: in a container a restarted server gets the same."""
    return pid == os.getpid() or not _running(pid)


def _running(pid: int) -> bool:
    if os.name == "nt":  # os.kill's 0 is CTRL_C_EVENT there, not a question: kept
        return True
    try:
        os.kill(pid, 0)  # no signal sent: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's, or no PID: not to touch
        return True
    return True


def _ours(entry: Path) -> bool:
    """A folder (not a link to one) of this user's, as mkdtemp made it."""
    try:
        info = entry.lstat()
    except OSError:
        return False
    own_uid = getattr(os, "getuid", lambda: info.st_uid)()  # Windows has no owner ids
    return stat.S_ISDIR(info.st_mode) and info.st_uid == own_uid
