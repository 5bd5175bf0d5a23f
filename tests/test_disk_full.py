"""A full disk, for real: every writing command on a store that lives on a tiny tmpfs.

The store is copied onto a tmpfs mounted, in a private mount namespace (`unshare -rm`, so no root
and nothing left mounted), with only a few KiB to spare; each writer then runs out of space part
way through. Each must end with the one documented line and exit 1, never "unexpected …", and
leave the store exactly as it was (the version's temporary folder removed, nothing published).
Skipped where the kernel or the container allows no such namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CURATE = Path(sys.executable).parent / "curate"
SLACK_KB = 24  # room left on the tmpfs after the base store: less than any of the writers below needs

DRIVER = r"""
import hashlib, json, os, subprocess, sys
base, mnt, slack, curate, outside = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
used = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(base) for f in fs) // 1024
size = used + 4 * len([1 for _, _, fs in os.walk(base) for _ in fs]) + slack  # tmpfs rounds files to pages
subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}k", "tmpfs", mnt], check=True)
store = os.path.join(mnt, "store")  # exports go beside it, on the same tiny disk, never into it
subprocess.run(["cp", "-a", base, store], check=True)

def snapshot():
    out = {}
    for d, _, fs in os.walk(mnt):
        if "/.locks" in d:
            continue
        for f in fs:
            p = os.path.join(d, f)
            out[os.path.relpath(p, mnt)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out

for args in json.loads(sys.stdin.read()):
    args = [a.replace("{mnt}", mnt).replace("{outside}", outside) for a in args]
    before = snapshot()
    p = subprocess.run([curate, *args, "--store", store], capture_output=True, text=True)
    after = snapshot()
    print(json.dumps({"args": args, "rc": p.returncode, "stderr": p.stderr, "changed": sorted(set(after.items()) ^ set(before.items()))}))
"""

WRITERS = [
    ["ingest", "{outside}/stories.txt", "-n", "big"],
    ["corpus", "--stories", "3000", "-n", "c2"],
    ["dedupe", "c-train", "-n", "cd"],
    ["duplicate", "c-train", "--rate", "0.5", "-n", "cdup"],
    ["subset", "c-train", "--fraction", "0.9", "-n", "sub"],
    ["tokenizer", "train", "c-train", "--vocab", "2000", "-n", "tk2"],
    ["export", "c-train", "{mnt}/out.parquet"],
    ["export", "c-train", "{mnt}/out.jsonl"],
    ["train", "c-train", "--val", "c-val", "--preset", "tiny", "--steps", "3", "--set", "threads=1"],
]


def _namespace() -> list[str] | None:
    """A command prefix giving a private mount namespace where tmpfs can be mounted, or None."""
    unshare = shutil.which("unshare")
    if not sys.platform.startswith("linux") or unshare is None or not shutil.which("mount"):
        return None
    for prefix in ([unshare, "-rm"], [unshare, "-m"]):
        probe = subprocess.run(
            [*prefix, "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", "/mnt"], capture_output=True
        )
        if probe.returncode == 0:
            return prefix
    return None


@pytest.mark.slow
@pytest.mark.skipif(not CURATE.is_file(), reason=f"{CURATE} is not installed (pip install -e .)")
def test_every_writer_on_a_full_disk(tmp_path: Path) -> None:
    prefix = _namespace()
    if prefix is None:
        pytest.skip("no private mount namespace here (unshare -rm / mount tmpfs not permitted)")
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "NO_COLOR": "1"}
    base = tmp_path / "base"
    for args in (
        ["corpus", "--stories", "2000", "--val-stories", "200", "-n", "c"],
        ["tokenizer", "train", "c-train", "--vocab", "300"],
        ["export", "c-train", str(tmp_path / "stories.txt")],
    ):
        subprocess.run([str(CURATE), *args, "--store", str(base)], check=True, capture_output=True, env=env)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    run = subprocess.run(
        [*prefix, sys.executable, str(driver), str(base), str(mnt), str(SLACK_KB), str(CURATE), str(tmp_path)],
        input=json.dumps(WRITERS),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    results = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(results) == len(WRITERS)
    for r in results:
        lines = r["stderr"].strip().splitlines()
        assert r["rc"] == 1, r
        assert len(lines) == 1 and "unexpected" not in lines[0], r
        assert "no space left on the device" in lines[0] or "No space left on device" in lines[0], r
        assert r["changed"] == [], r  # nothing published, no partial file, no debris
