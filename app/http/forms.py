"""Multipart forms -> the plain {field: text | Upload} dict runners take."""

from __future__ import annotations

from litestar import Request
from litestar.datastructures import UploadFile

from app.errors import DuplicateField, EmptyBody, InvalidRequest
from app.runners.base import Form, Upload


async def read_form(request: Request) -> Form:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        if request.headers.get("content-length") in (None, "0") and "transfer-encoding" not in request.headers:
            raise EmptyBody("the request has no body; send the photo as multipart/form-data field 'image'")
        raise InvalidRequest("send the photo and options as multipart/form-data")
    multi = await request.form()
    form: Form = {}
    for key in multi.keys():
        values = multi.getall(key)
        if len(values) > 1:
            raise DuplicateField(f"the field {key!r} is given {len(values)} times", field=key)
        value = values[0]
        if isinstance(value, UploadFile):
            form[key] = Upload(filename=value.filename or "", content_type=value.content_type or "",
                               data=await value.read())
            await value.close()
        else:
            form[key] = value
    return form
