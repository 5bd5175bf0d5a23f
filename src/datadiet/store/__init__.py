"""The versioned, content-addressed artefact store, in parts, each file one job:

- `model.py`    the version model: `Manifest`, artefact `KINDS`, canonical JSON, names, file hashes
- `remote.py`   the remote backend (`Remote`: any pyarrow filesystem), `is_uri`, `first_line`
- `parts.py`    part I/O: `stage_parts`, `PartWriter`, `PartSource`, `StageTarget`, `Staged`
- `dataset.py`  `Dataset` (a handle on one version) and `Commit`
- `store.py`    `Store`: resolve refs, `commit(build=...)` (content-addressed, locked, atomic)
- `disk.py`     durable renames and the one-line error of a failed write; `lineage.py` the chain back to files
- `maintain.py` `verify` and the pieces of `curate gc`

It knows no operation. Import the public names from here::

    from datadiet.store import Store
    store = Store(root)                       # a folder, or a URI such as "s3://bucket/datadiet"
    commit = store.commit("ts", operation="subset", params={...}, parents=[ds.ref], build=fn)
"""

from datadiet.store.dataset import Commit, Dataset, read_parts
from datadiet.store.disk import disk_error, fsync_dir
from datadiet.store.lineage import lineage
from datadiet.store.maintain import (
    FETCH_DEBRIS_GRACE_S,
    REMOTE_DEBRIS_GRACE_S,
    abandoned,
    remote_debris,
    remove,
    stale_cache,
    unreferenced,
    verify,
    work_folders,
)
from datadiet.store.model import (
    KINDS,
    VERSION_LEN,
    Manifest,
    canonical_json,
    check_name,
    check_ref,
    file_sha256,
    manifest_bytes,
)
from datadiet.store.parts import STAGE_PREFIX, PartSource, PartWriter, Staged, StageTarget, part_metadata, stage_parts
from datadiet.store.remote import (
    CACHE_ENV,
    FETCH_PREFIX,
    UPLOAD_DIR,
    Remote,
    cache_root,
    first_line,
    is_file,
    is_uri,
    open_filesystem,
    transfer,
)
from datadiet.store.store import (
    CURRENT_FILE,
    DEFAULT_STORE,
    LOCK_DIR,
    STORE_ENV,
    TMP_DIR,
    Store,
)

__all__ = [
    "CACHE_ENV",
    "CURRENT_FILE",
    "DEFAULT_STORE",
    "FETCH_DEBRIS_GRACE_S",
    "FETCH_PREFIX",
    "KINDS",
    "LOCK_DIR",
    "REMOTE_DEBRIS_GRACE_S",
    "STAGE_PREFIX",
    "STORE_ENV",
    "TMP_DIR",
    "UPLOAD_DIR",
    "VERSION_LEN",
    "Commit",
    "Dataset",
    "Manifest",
    "PartSource",
    "PartWriter",
    "Remote",
    "StageTarget",
    "Staged",
    "Store",
    "abandoned",
    "cache_root",
    "canonical_json",
    "check_name",
    "check_ref",
    "disk_error",
    "file_sha256",
    "first_line",
    "fsync_dir",
    "is_file",
    "is_uri",
    "lineage",
    "manifest_bytes",
    "open_filesystem",
    "part_metadata",
    "read_parts",
    "remote_debris",
    "remove",
    "stage_parts",
    "stale_cache",
    "transfer",
    "unreferenced",
    "verify",
    "work_folders",
]
