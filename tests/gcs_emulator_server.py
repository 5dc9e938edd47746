"""Run `gcp-storage-emulator` with upload preconditions (test-only).

The emulator (2026.7.19) ignores `ifGenerationMatch` on uploads, so a
create-if-absent upload (`if_generation_match=0`, what unibed/dataplane/storage.py uses for
the build lock) would silently overwrite. Real GCS answers 412 Precondition
Failed when the object exists; this wrapper adds exactly that check to the
emulator's insert handler and then runs the emulator's own CLI. The server is
single-threaded, so the check and the write cannot interleave with another
upload. Usage: python tests/gcs_emulator_server.py start --host H --port P ...
"""

from __future__ import annotations

import sys
from http import HTTPStatus

from gcp_storage_emulator import __main__ as cli
from gcp_storage_emulator import server
from gcp_storage_emulator.exceptions import NotFound
from gcp_storage_emulator.handlers import objects

_insert = objects.insert


def _object_exists(storage, bucket: str, name: str) -> bool:
    try:
        storage.get_file_obj(bucket, name)
    except NotFound:
        return False
    return True


def insert_with_preconditions(request, response, storage, *args, **kwargs):
    wanted = request.query.get("ifGenerationMatch")
    if wanted and wanted[0] == "0":
        name = request.query.get("name", [None])[0]
        if name is None and isinstance(request.data, dict):  # multipart: name in the metadata part
            name = request.data.get("meta", {}).get("name")
        if name and _object_exists(storage, request.params["bucket_name"], name):
            response.status = HTTPStatus.PRECONDITION_FAILED
            response.json({"error": {"code": 412, "message": "At least one of the pre-conditions "
                                     "you specified did not hold.",
                                     "errors": [{"reason": "conditionNotMet"}]}})
            return None
    return _insert(request, response, storage, *args, **kwargs)


objects.insert = insert_with_preconditions  # the router's fallback looks it up here
for _, handlers in server.HANDLERS:  # the routing table holds the function itself
    for method, handler in handlers.items():
        if handler is _insert:
            handlers[method] = insert_with_preconditions

if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:]))
