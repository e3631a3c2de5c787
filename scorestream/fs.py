"""Files the driver reads and writes, on a local path or at any Hadoop file-system URI.

A plain path or a `file:` URI is a local `Path`, handled with the operating system's calls. Any
other scheme (`hdfs://`, `s3a://`, ...) is a `HadoopPath`, handled through Hadoop's FileSystem
API in the SparkSession's JVM, so it reaches whatever Spark itself can read and write. URIs stay
strings: `pathlib.Path("s3a://b/x")` would fold them to `s3a:/b/x`.

Renames are the commit points (a version directory, an alias file). They are atomic on local
disks and on HDFS; object stores (s3a) copy and delete instead, so `Store.atomic_rename` says
whether a caller may rely on them.

One module (about 350 lines) because the two stores implement one protocol whose renames
are the registry's commit points: `LocalStore` and `HadoopStore` side by side is how they stay
alike (the same refusal of an existing target, the same errors).
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from scorestream.errors import ConfigError

# Hadoop schemes whose rename is atomic at the NameNode, as on a local disk.
ATOMIC_RENAME_SCHEMES = ("hdfs", "viewfs")
_URI = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*):(?P<rest>.*)$")


@dataclass(frozen=True)
class HadoopPath:
    """A location on a Hadoop file system, kept as its URI string."""

    uri: str

    def __truediv__(self, part: str) -> HadoopPath:
        return HadoopPath(f"{self.uri.rstrip('/')}/{part}")

    def __str__(self) -> str:
        return self.uri

    @property
    def name(self) -> str:
        return self.uri.rstrip("/").rsplit("/", 1)[-1]

    def with_name(self, name: str) -> HadoopPath:
        """The sibling called `name`, as `Path.with_name`."""
        return HadoopPath(f"{self.uri.rstrip('/').rsplit('/', 1)[0]}/{name}")

    @property
    def scheme(self) -> str:
        return self.uri.split(":", 1)[0].lower()


Location = Path | HadoopPath


def location(value: str | Path | HadoopPath) -> Location:
    """A `Path` for plain paths and `file:` URIs, a `HadoopPath` for any other scheme."""
    if isinstance(value, Path | HadoopPath):
        return value
    text = value.strip()
    match = _URI.match(text)
    # One letter before the colon is a drive (C:\...), not a scheme.
    # Local paths are made absolute here, against this process's working directory: the JVM
    # resolves a relative path against its own, which differs once the process has changed
    # directory after the SparkSession started (a notebook, an embedding program).
    if match is None or len(match.group("scheme")) == 1:
        return Path(text).expanduser().absolute()
    scheme, rest = match.group("scheme").lower(), match.group("rest")
    if scheme == "file":
        parsed = urlparse(text)
        if parsed.netloc not in ("", "localhost"):
            msg = f"{text!r}: a file: URI names no host; expected file:///absolute/path"
            raise ConfigError(msg)
        return Path(unquote(parsed.path)).expanduser().absolute()
    if not rest.startswith("//"):
        msg = (
            f"{text!r} is not a valid {scheme} URI; expected {scheme}://authority/path "
            "(two slashes after the colon)"
        )
        raise ConfigError(msg)
    return HadoopPath(text)


class Store(Protocol):
    """The file operations the registry and the checkpoint checks need."""

    atomic_rename: bool

    def exists(self, path: Location) -> bool: ...
    def is_dir(self, path: Location) -> bool: ...
    def is_file(self, path: Location) -> bool: ...
    def names(self, path: Location) -> list[str]: ...
    def read_bytes(self, path: Location) -> bytes: ...
    def write_bytes(self, path: Location, data: bytes) -> None: ...
    def mkdirs(self, path: Location) -> None: ...
    def rename(self, src: Location, dst: Location) -> bool: ...
    def replace(self, src: Location, dst: Location) -> None: ...
    def delete(self, path: Location, recursive: bool = False) -> None: ...


class LocalStore:
    """The local disk, through the operating system."""

    atomic_rename = True

    def exists(self, path: Location) -> bool:
        return Path(str(path)).exists()

    def is_dir(self, path: Location) -> bool:
        return Path(str(path)).is_dir()

    def is_file(self, path: Location) -> bool:
        return Path(str(path)).is_file()

    def names(self, path: Location) -> list[str]:
        try:
            return sorted(os.listdir(str(path)))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def read_bytes(self, path: Location) -> bytes:
        return Path(str(path)).read_bytes()

    def write_bytes(self, path: Location, data: bytes) -> None:
        with open(str(path), "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    def mkdirs(self, path: Location) -> None:
        Path(str(path)).mkdir(parents=True, exist_ok=True)

    def rename(self, src: Location, dst: Location) -> bool:
        """Move `src` to the missing name `dst`; False when `dst` exists (another writer won)."""
        source, target = str(src), str(dst)
        try:
            if os.path.isdir(source):
                # rename(2) of a directory onto a non-empty one fails (ENOTEMPTY/EEXIST).
                os.rename(source, target)
            else:
                # rename(2) of a file replaces silently; link(2) fails when the name is taken.
                os.link(source, target)
                os.unlink(source)
        except FileExistsError:
            return False
        except OSError as exc:
            if Path(target).exists():
                return False
            msg = f"cannot rename {source} to {target}: {exc}"
            raise ConfigError(msg) from exc
        return True

    def replace(self, src: Location, dst: Location) -> None:
        os.replace(str(src), str(dst))

    def delete(self, path: Location, recursive: bool = False) -> None:
        import shutil

        target = Path(str(path))
        if target.is_dir() and not target.is_symlink():
            if recursive:
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.rmdir()
        else:
            target.unlink(missing_ok=True)


LOCAL = LocalStore()


@dataclass
class HadoopStore:
    """A Hadoop file system reached through the running SparkContext's JVM (driver side)."""

    scheme: str
    spark: Any = None
    atomic_rename: bool = False
    _context: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.atomic_rename = self.scheme in ATOMIC_RENAME_SCHEMES

    # -- the JVM -----------------------------------------------------------------------------
    def _sc(self) -> Any:
        if self.spark is not None:
            return self.spark.sparkContext
        from pyspark import SparkContext

        sc = SparkContext._active_spark_context
        if sc is None:
            msg = (
                f"{self.scheme}:// paths are read through Spark's Hadoop FileSystem, and no "
                "SparkSession is running; start one first (scorestream.spark.session)"
            )
            raise ConfigError(msg)
        return sc

    def _jpath(self, path: Location) -> Any:
        sc = self._sc()
        return sc._jvm.org.apache.hadoop.fs.Path(str(path))

    def _fs(self, path: Location) -> Any:
        sc = self._sc()
        return self._jpath(path).getFileSystem(sc._jsc.hadoopConfiguration())

    def _call(self, what: str, path: Location, fn: Any) -> Any:
        """Run a JVM call; Java's FileNotFound becomes Python's, other failures a ConfigError."""
        from py4j.protocol import Py4JJavaError

        try:
            return fn()
        except Py4JJavaError as exc:
            name = exc.java_exception.getClass().getName()
            text = str(exc.java_exception.getMessage() or name).splitlines()[0][:300]
            if name == "java.io.FileNotFoundException":
                missing = f"{path}: {text}"
                raise FileNotFoundError(missing) from exc
            if name == "org.apache.hadoop.fs.FileAlreadyExistsException":
                taken = f"{path}: {text}"
                raise FileExistsError(taken) from exc
            msg = f"cannot {what} {path}: {name}: {text}"
            raise ConfigError(msg) from exc

    # -- operations --------------------------------------------------------------------------
    def exists(self, path: Location) -> bool:
        return bool(self._call("stat", path, lambda: self._fs(path).exists(self._jpath(path))))

    def _status(self, path: Location) -> Any:
        try:
            return self._call("stat", path, lambda: self._fs(path).getFileStatus(self._jpath(path)))
        except FileNotFoundError:
            return None

    def is_dir(self, path: Location) -> bool:
        status = self._status(path)
        return status is not None and bool(status.isDirectory())

    def is_file(self, path: Location) -> bool:
        status = self._status(path)
        return status is not None and bool(status.isFile())

    def names(self, path: Location) -> list[str]:
        try:
            listed = self._call("list", path, lambda: self._fs(path).listStatus(self._jpath(path)))
        except FileNotFoundError:
            return []
        return sorted(str(s.getPath().getName()) for s in listed)

    def read_bytes(self, path: Location) -> bytes:
        def read() -> bytes:
            stream = self._fs(path).open(self._jpath(path))
            try:
                return bytes(stream.readAllBytes())
            finally:
                stream.close()

        return bytes(self._call("read", path, read))

    def write_bytes(self, path: Location, data: bytes) -> None:
        def write() -> None:
            stream = self._fs(path).create(self._jpath(path), True)
            try:
                stream.write(bytearray(data))
                stream.hsync()  # on the DataNodes' disks before the rename that publishes it
            finally:
                stream.close()

        self._call("write", path, write)

    def files(self, path: Location) -> list[tuple[str, int, int]]:
        """(path below `path`, bytes, modification ms) of every file under it, in name order."""
        prefix = len(str(self._jpath(path).toUri().getPath()).rstrip("/")) + 1

        def walk() -> list[tuple[str, int, int]]:
            found = self._fs(path).listFiles(self._jpath(path), True)
            rows = []
            while found.hasNext():
                status = found.next()
                name = str(status.getPath().toUri().getPath())[prefix:]
                rows.append((name, int(status.getLen()), int(status.getModificationTime())))
            return sorted(rows)

        return list(self._call("list", path, walk))

    def mkdirs(self, path: Location) -> None:
        self._call("create directory", path, lambda: self._fs(path).mkdirs(self._jpath(path)))

    def _rename(self, src: Location, dst: Location, option: str) -> None:
        sc = self._sc()
        jvm = sc._jvm
        if self._context is None:
            # FileContext.rename is the one that refuses an existing target (NONE) or replaces
            # it atomically (OVERWRITE); FileSystem.rename moves into an existing directory.
            self._context = jvm.org.apache.hadoop.fs.FileContext.getFileContext(
                self._jpath(src).toUri(), sc._jsc.hadoopConfiguration()
            )
        options = sc._gateway.new_array(jvm.org.apache.hadoop.fs.Options.Rename, 1)
        options[0] = getattr(jvm.org.apache.hadoop.fs.Options.Rename, option)
        self._context.rename(self._jpath(src), self._jpath(dst), options)

    def rename(self, src: Location, dst: Location) -> bool:
        try:
            self._call("rename", src, lambda: self._rename(src, dst, "NONE"))
        except FileExistsError:
            return False
        return True

    def replace(self, src: Location, dst: Location) -> None:
        self._call("rename", src, lambda: self._rename(src, dst, "OVERWRITE"))

    def delete(self, path: Location, recursive: bool = False) -> None:
        self._call("delete", path, lambda: self._fs(path).delete(self._jpath(path), recursive))


def store(path: Location, spark: Any = None) -> Store:
    """The store of `path`: the local disk, or its Hadoop file system through Spark."""
    if isinstance(path, HadoopPath):
        return HadoopStore(path.scheme, spark)
    return LOCAL


def read_text(path: Location, spark: Any = None) -> str:
    return store(path, spark).read_bytes(path).decode("utf-8")


def write_atomic(target: Store, path: Location, data: bytes) -> None:
    """Write a sibling temporary file, then rename it over `path`: readers see old or new."""
    tmp = _sibling(path, f".{_name(path)}.{uuid.uuid4().hex}.tmp")
    target.write_bytes(tmp, data)
    try:
        target.replace(tmp, path)
    except BaseException:
        target.delete(tmp)
        raise


def _name(path: Location) -> str:
    return path.name


def _sibling(path: Location, name: str) -> Location:
    return path.with_name(name)
