"""A local file as a WhatsApp message's inline media: read, checked and base64-encoded once,
at enqueue (the Python client's `media_path=`, the CLI's `--media-file`)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from producer.core.contract import WA_MEDIA_MAX_BYTES
from producer.core.errors import InvalidMessage


def read_media_file(path: str | os.PathLike[str], field: str = "media_path") -> dict[str, str]:
    """`{"media_base64": …, "file_name": …}` for the file at `path`; InvalidMessage (naming
    `field`, the file and its size) when it cannot be read or is over 512 KB."""
    file = Path(path)
    try:
        with file.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > WA_MEDIA_MAX_BYTES:  # refused before reading it whole
                raise InvalidMessage(field, _too_large(file, size))
            data = fh.read(WA_MEDIA_MAX_BYTES + 1)
    except OSError as exc:
        raise InvalidMessage(field, f"cannot read {str(file)!r}: {exc.strerror or exc}"
                             " (give the path of a readable file)") from None
    if len(data) > WA_MEDIA_MAX_BYTES:  # it grew while being read
        raise InvalidMessage(field, _too_large(file, len(data)))
    if not data:
        raise InvalidMessage(field, f"{str(file)!r} is empty (0 bytes): nothing to send")
    return {"media_base64": base64.b64encode(data).decode("ascii"), "file_name": file.name}


def _too_large(file: Path, size: int) -> str:
    return (f"{str(file)!r} is {size} bytes ({size / 1024:.0f} KB); a WhatsApp file sent"
            f" inline takes at most {WA_MEDIA_MAX_BYTES} bytes (512 KB): send a smaller file,"
            " or put it on a web server and give its URL (media_url / --media-url)")
