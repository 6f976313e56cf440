"""A shopper's photo, distrusted: bounded while it is read, sniffed, decoded by the one decode guard, in memory.

Checks run cheapest first and each says what is wrong: the size before the body is read (its
Content-Length) and while it is read (10 MB, then 413), the first bytes before any decoder sees them
(JPEG, PNG or WebP only, else 415), the declared pixel count before decoding (images.open_image:
a 20,000 × 20,000 PNG of a few bytes is refused, 400), then the decode itself (a truncated or damaged
file, 400). The camera's EXIF orientation is applied, so a phone photo taken upright is searched
upright. Nothing is written to disk: the multipart body is split here, in memory, rather than by a
form parser that spools large parts to temporary files.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.message import Message
from io import BytesIO

from PIL import Image, ImageOps

from fashion_search.errors import UserError
from fashion_search.images import UNREADABLE, ImageTooLargeError, open_image

MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_BODY_BYTES = MAX_PHOTO_BYTES + 64 * 1024  # the photo and its multipart headers
FILE_FIELD = "image"
SIGNATURES = {"JPEG": (b"\xff\xd8\xff",), "PNG": (b"\x89PNG\r\n\x1a\n",)}


class UploadError(UserError, ValueError):
    """An upload refused, with the HTTP status that says why (400, 413 or 415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def too_large(size: int | None = None) -> UploadError:
    said = f" ({size:,} bytes)" if size is not None else ""
    return UploadError(413, f"the upload is too large{said}: a photo may be at most {MAX_PHOTO_BYTES // 2**20} MB")


async def read_bounded(declared_length: str | None, chunks: AsyncIterator[bytes]) -> bytes:
    """The request body, refused (413) as soon as its declared or actual length passes MAX_BODY_BYTES."""
    if declared_length is not None:
        try:
            length = int(declared_length)
        except ValueError:
            raise UploadError(400, f"Content-Length {declared_length[:40]!r} is not a number") from None
        if length > MAX_BODY_BYTES:
            raise too_large(length)
    body, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large()
        body.append(chunk)
    return b"".join(body)


def _header_params(name: str, value: str) -> Message:
    message = Message()
    message[name] = value
    return message


def photo_bytes(body: bytes, content_type: str) -> bytes:
    """The photo in a request body: the `image` part (or the first file part) of multipart/form-data, or the
    body itself when it is sent as is (Content-Type image/... or application/octet-stream)."""
    if not content_type.lower().startswith("multipart/form-data"):
        return body
    boundary = _header_params("content-type", content_type).get_param("boundary")
    if not isinstance(boundary, str) or not 1 <= len(boundary) <= 70:  # RFC 2046: 1-70 characters
        raise UploadError(400, "the multipart body has no boundary: send the photo as multipart/form-data "
                               f"with a file field named {FILE_FIELD!r}")
    delimiter = b"\r\n--" + boundary.encode("latin-1", "replace")
    for part in (b"\r\n" + body).split(delimiter)[1:]:
        if part.startswith(b"--"):  # the closing delimiter
            break
        head, separator, content = part.partition(b"\r\n\r\n")
        if not separator:
            continue
        disposition = next((line.split(":", 1)[1].strip() for line in head.decode("latin-1").split("\r\n")
                            if line.lower().startswith("content-disposition:")), "")
        params = _header_params("content-disposition", disposition)
        if params.get_param("name", header="content-disposition") == FILE_FIELD or params.get_filename():
            return content
    raise UploadError(400, f"the multipart body has no file field named {FILE_FIELD!r}")


def sniff(data: bytes) -> str | None:
    """JPEG, PNG or WEBP from the first bytes (never from the name or the declared type), else None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((kind for kind, starts in SIGNATURES.items() if data.startswith(starts)), None)


def decode_photo(data: bytes) -> Image.Image:
    """The photo decoded upright (EXIF orientation applied), or an UploadError saying why not."""
    if not data:
        raise UploadError(400, "the upload is empty: choose a JPEG, PNG or WebP photo")
    if len(data) > MAX_PHOTO_BYTES:
        raise too_large(len(data))
    if sniff(data) is None:
        raise UploadError(415, f"the upload is not a JPEG, PNG or WebP image (it begins with {data[:8]!r})")
    try:
        image = open_image(BytesIO(data), name="the photo")
    except ImageTooLargeError as error:
        raise UploadError(400, str(error)) from None
    except UNREADABLE as error:
        raise UploadError(400, f"the photo cannot be decoded (truncated or damaged?): {str(error)[:200]}") from None
    try:
        return ImageOps.exif_transpose(image)
    except (*UNREADABLE, KeyError, TypeError, SyntaxError):  # damaged EXIF: the picture is still a picture
        return image
