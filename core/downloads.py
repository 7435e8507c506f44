"""Fetching a dataset's files: an offline machine found out quickly, archives bounded before use.

torchvision's downloader sets no timeout of its own, so a probe with its own timeout runs first;
what cannot be fetched becomes a `DataError` that names the folder the files were expected in.
"""
from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from .imagedata import DataError

__all__ = ["DOWNLOAD_TIMEOUT_S", "MAX_ARCHIVE_BYTES", "reachable", "require_online", "missing",
           "fetch"]

DOWNLOAD_TIMEOUT_S = 20
# A downloaded archive larger than this, or a member larger once unpacked, is refused.
MAX_ARCHIVE_BYTES = 64 << 20


def reachable(urls: list[str]) -> bool:
    """Whether one of `urls` answers within DOWNLOAD_TIMEOUT_S (a timeout of this request alone)."""
    for url in urls:
        try:
            request = urllib.request.Request(url, method="HEAD")
            with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S):
                return True
        except urllib.error.HTTPError:
            return True  # the server answered; the download itself reports what it says
        except OSError:
            continue
    return False


def require_online(urls: list[str]) -> None:
    """OSError unless one of `urls` answers (this machine looks offline)."""
    if not reachable(urls):
        raise OSError(f"no download server answered within {DOWNLOAD_TIMEOUT_S} s (this machine "
                      "looks offline)")


def missing(what: str, root: Path, expected: str, exc: BaseException) -> DataError:
    """The error for a dataset that is neither in the data folder nor downloadable."""
    return DataError(f"{what} not found under {root} (expected {expected}) and it could not be "
                     f"downloaded: {exc}. Set --data-root or TINYVISION_DATA to a folder that has "
                     "it.")


def fetch(url: str, what: str) -> bytes:
    """The body at `url`, refused when larger than MAX_ARCHIVE_BYTES (read no further)."""
    require_online([url])
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
        body = response.read(MAX_ARCHIVE_BYTES + 1)
    if len(body) > MAX_ARCHIVE_BYTES:
        raise DataError(f"the {what} archive is larger than {MAX_ARCHIVE_BYTES >> 20} MB; refused")
    return body
