"""Listing files through Spark's Hadoop FileSystem, so that the same calls work on a folder, s3a://
and dbfs:/ — for what lives beside the Delta tables: streaming checkpoints, a table's data files."""
from __future__ import annotations

from pyspark.sql import SparkSession


class HadoopFiles:
    """The file system of one path (a lake root, a checkpoint, a table's location)."""

    def __init__(self, spark: SparkSession, path: str):
        self._jvm = spark._jvm
        self._fs = self._path(path).getFileSystem(spark._jsc.hadoopConfiguration())

    def _path(self, path: str):
        return self._jvm.org.apache.hadoop.fs.Path(path)

    def _listing(self, folder: str) -> list:
        return list(self._fs.listStatus(self._path(folder))) if self._fs.exists(self._path(folder)) else []

    def folders(self, folder: str) -> list[str]:
        """Names of the folders directly under folder (none when it is not there)."""
        return sorted(s.getPath().getName() for s in self._listing(folder) if s.isDirectory())

    def files(self, folder: str) -> dict[str, int]:
        """Name → modification time in ms of the files directly under folder, dot-files left out."""
        return {s.getPath().getName(): s.getModificationTime() for s in self._listing(folder)
                if not s.isDirectory() and not s.getPath().getName().startswith(".")}

    def read_text(self, path: str) -> str:
        stream = self._fs.open(self._path(path))
        try:
            return bytes(self._jvm.org.apache.commons.io.IOUtils.toByteArray(stream)).decode("utf-8")
        finally:
            stream.close()

    def count_files(self, folder: str) -> int:
        """Data files under a table's folder. The transaction log is not entered: a writer beside us
        (the stream) renames temporary files there, and a listing that reads each file's permissions
        fails on one that vanished between the listing and the look (seen beside a running stream)."""
        found = 0
        for status in self._fs.listStatus(self._path(folder)):
            if not status.isDirectory():
                found += 1
            elif status.getPath().getName() != "_delta_log":
                listing = self._fs.listFiles(status.getPath(), True)
                while listing.hasNext():
                    listing.next()
                    found += 1
        return found
