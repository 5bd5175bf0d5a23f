"""Pins the version ids, rows, file hashes and stats of a small fixed pipeline to literal values.

Written before the layout move of issue 17 and computed on the code of that day: a refactor that
changes any id, row count, file byte or counter fails here. If a change is *meant* to alter a
version, it must bump the operation's parameters (as `near_scheme` did) and update these literals
in the same commit, saying why.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.helpers import cli, write_stories

# Manifest stats that are timings (differ on every run) rather than results.
_TIMINGS = ("seconds",)

_WORDS = [
    "the",
    "a",
    "fox",
    "dog",
    "cat",
    "bird",
    "river",
    "hill",
    "tree",
    "stone",
    "sun",
    "moon",
    "ran",
    "saw",
    "found",
    "lost",
    "big",
    "small",
    "red",
    "old",
]


def _corpus() -> list[str]:
    """120 made-up stories: 100 distinct, 8 exact and 12 near copies of a few of them, planted at fixed places."""
    stories = []
    for i in range(100):
        words = [_WORDS[(i * 7 + j * (i % 5 + 3)) % len(_WORDS)] for j in range(12 + i % 9)]
        stories.append(f"Story {i}: " + " ".join(words) + f". It ended on day {i * 13 % 97}.")
    exact = [stories[i] for i in (3, 3, 17, 40, 40, 40, 55, 81)]
    near = [
        stories[i].replace(" the ", " one ", 1) + " Again." for i in (5, 5, 22, 22, 60, 61, 62, 63, 70, 71, 90, 99)
    ]
    out = stories[:]
    for k, s in enumerate(exact + near):
        out.insert((k * 37) % len(out), s)
    return out


def _pin(payload: dict[str, Any]) -> dict[str, Any]:
    """What must not change about one written version: id, rows, every file's hash, its result stats."""
    manifest = json.loads((Path(payload["path"]) / "manifest.json").read_text())
    return _pinned(manifest)


def _pinned(manifest: dict[str, Any]) -> dict[str, Any]:
    stats = _rounded({k: v for k, v in (manifest["stats"] or {}).items() if k not in _TIMINGS})
    return {
        "version": manifest["version"],
        "rows": manifest["rows"],
        "files": manifest["files"],
        "stats": stats,
    }


def _stats_pin(store: Path, payload: dict[str, Any]) -> dict[str, Any]:
    """`curate stats` prints the dataset's ref and values; the stats artefact itself is found in the store."""
    name = payload["ref"].split("@")[0]
    found = [
        _pinned(json.loads(m.read_text()))
        for m in sorted((store / "stats" / name).glob("*/manifest.json"))
        if json.loads(m.read_text())["parents"] == [payload["ref"]]
    ]
    for artefact in found:
        # A float sum in the statistics varies in its last bit between runs (summation order), so
        # stats.json is pinned through its rounded values rather than its hash.
        del artefact["files"]
    return {"dataset": payload["ref"], "values": _rounded(payload["stats"]), "artefacts": found}


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def run_pipeline(runner: CliRunner, tmp: Path) -> dict[str, Any]:
    """ingest -> dedupe -> subset -> duplicate (exact, near, append) -> stats -> tokenizer -> stats with tokens."""
    import os

    store = tmp / "store"  # the caller points $DATADIET_STORE here and runs in tmp
    os.environ["DATADIET_STORE"] = str(store)
    write_stories(tmp / "stories.txt", _corpus())
    src = "stories.txt"  # relative: the ingest parameters record the path as given, and tmp differs per run
    out: dict[str, Any] = {}
    out["ingest"] = _pin(cli(runner, "ingest", str(src), "--name", "pin", "-q"))
    out["dedupe"] = _pin(cli(runner, "dedupe", "pin", "--name", "pin-dd", "--verify", "-q"))
    out["dedupe_exact"] = _pin(cli(runner, "dedupe", "pin", "--name", "pin-ex", "--method", "exact", "-q"))
    out["subset"] = _pin(cli(runner, "subset", "pin-dd", "--fraction", "0.5", "--seed", "3", "--name", "pin-s", "-q"))
    out["duplicate"] = _pin(cli(runner, "duplicate", "pin-s", "--rate", "0.3", "--name", "pin-d", "-q"))
    out["duplicate_near"] = _pin(
        cli(
            runner,
            "duplicate",
            "pin-s",
            "--rate",
            "0.4",
            "--pool",
            "3",
            "--near",
            "0.2",
            "--seed",
            "5",
            "--name",
            "pin-n",
            "-q",
        )
    )
    out["duplicate_append"] = _pin(
        cli(runner, "duplicate", "pin-s", "--rate", "0.25", "--copies", "4", "--append", "--name", "pin-a", "-q")
    )
    out["against"] = _pin(cli(runner, "dedupe", "pin-n", "--against", "pin-s", "--name", "pin-ag", "-q"))
    out["stats"] = _stats_pin(store, cli(runner, "stats", "pin-n", "-q"))
    out["tokenizer"] = _pin(cli(runner, "tokenizer", "train", "pin-dd", "--vocab", "300", "-q"))
    out["stats_tokens"] = _stats_pin(
        store, cli(runner, "stats", "pin-d", "--tokenizer", "pin-dd@" + out["tokenizer"]["version"], "-q")
    )
    return out


def test_fixed_pipeline_ids_rows_and_hashes_are_pinned(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATADIET_STORE", str(tmp_path / "store"))
    got = run_pipeline(runner, tmp_path)
    for step, want in PINNED.items():
        assert got[step] == want, f"{step} changed"
    assert got.keys() == PINNED.keys()


# Computed on the code before issue 17's move (commit a36a8fa), on Linux x86-64.
PINNED: dict[str, Any] = {
    "against": {
        "files": {
            "clusters.parquet": "ccdd448612246b7c34ea26709d2851c8f2efac8d3ff35c52e5125689d0f797e0",
            "part-00000.parquet": "5ae4ebfe102ce370a586ced25b7cffaae55c63008b43553d5e5993209370be64",
        },
        "rows": 20,
        "stats": {
            "bands": 16,
            "candidate_pairs": 0,
            "clusters": 33,
            "docs_in": 53,
            "docs_out": 20,
            "largest_cluster": 2,
            "rejected_by_estimate": 0,
            "rejected_by_verification": 0,
            "removed": 33,
            "removed_exact": 33,
            "removed_near": 0,
            "rows": 8,
        },
        "version": "7350e73dc741b497",
    },
    "dedupe": {
        "files": {
            "clusters.parquet": "57c5b001db8fcc7907c02911230269b27cdaba99da203b7cecc432816783ecd6",
            "part-00000.parquet": "1a90609a07e2e4f85cfc95c6f46df9066c94057d1d1f6244eb15c9bf1b949256",
        },
        "rows": 105,
        "stats": {
            "bands": 16,
            "candidate_pairs": 22,
            "clusters": 11,
            "docs_in": 120,
            "docs_out": 105,
            "largest_cluster": 4,
            "rejected_by_estimate": 17,
            "rejected_by_verification": 0,
            "removed": 15,
            "removed_exact": 9,
            "removed_near": 6,
            "rows": 8,
        },
        "version": "7cbe8aa5601c891d",
    },
    "dedupe_exact": {
        "files": {
            "clusters.parquet": "4e30aa6b349ae3e2f6c79dfa9be2174828a817ecc4c3fe0b18b0cd5a1a8bfacc",
            "part-00000.parquet": "f24a11945bb1a4cdfbdfda0c84369dcd89582a42ef091ec67aefc36e5d4e1af1",
        },
        "rows": 110,
        "stats": {
            "bands": None,
            "candidate_pairs": 0,
            "clusters": 7,
            "docs_in": 120,
            "docs_out": 110,
            "largest_cluster": 4,
            "rejected_by_estimate": 0,
            "rejected_by_verification": 0,
            "removed": 10,
            "removed_exact": 10,
            "removed_near": 0,
            "rows": None,
        },
        "version": "4beabb44a49235dc",
    },
    "duplicate": {
        "files": {
            "part-00000.parquet": "8cd6cb9af349617d904cbe37955faabff27ff6ba4b7a5ff52d3eea054572113b",
            "pool.parquet": "caf9644366b950f779d0b9d0cdc00c3efda5936b7240e20725d2cb21ecda938f",
        },
        "rows": 53,
        "stats": {
            "copies_injected": 15,
            "copies_per_pool_doc_max": 15,
            "copies_per_pool_doc_min": 15,
            "copy_share": 0.283018867925,
            "injected_share": 0.283018867925,
            "mode": "overwrite",
            "pool_ids": ["stories:100"],
            "pool_ids_truncated": False,
            "pool_size": 1,
            "rows_in": 53,
            "rows_out": 53,
            "rows_overwritten": 15,
            "unique_documents": 38,
        },
        "version": "7080aa8fe941e5e3",
    },
    "duplicate_append": {
        "files": {
            "part-00000.parquet": "18ee2abbe04c12218155d2c4403945628426e50a1dd617b5fc183b77382c5406",
            "pool.parquet": "54f203eb1a0519bd08edd34988bfeaae21c24a1a9bb2b45dc296eb91703e15a5",
        },
        "rows": 66,
        "stats": {
            "copies_injected": 13,
            "copies_per_pool_doc_max": 5,
            "copies_per_pool_doc_min": 4,
            "copy_share": 0.19696969697,
            "injected_share": 0.19696969697,
            "mode": "append",
            "pool_ids": ["stories:0", "stories:116", "stories:96"],
            "pool_ids_truncated": False,
            "pool_size": 3,
            "rows_in": 53,
            "rows_out": 66,
            "rows_overwritten": 0,
            "unique_documents": 53,
        },
        "version": "ec8539f0e93b363f",
    },
    "duplicate_near": {
        "files": {
            "part-00000.parquet": "e7df80102831c126d009513d5b60564575ce8b67c7635aac386214050832152e",
            "pool.parquet": "107b68684c9d3c8ed90fcc8460ecd24ddb44f151a6b5d54ab6705af0ab5706cb",
        },
        "rows": 53,
        "stats": {
            "copies_injected": 20,
            "copies_per_pool_doc_max": 7,
            "copies_per_pool_doc_min": 6,
            "copy_share": 0.377358490566,
            "edit_fraction_mean": 0.199239760637,
            "injected_share": 0.377358490566,
            "jaccard_to_source_mean": 0.187733799219,
            "mode": "overwrite",
            "pool_ids": ["stories:24", "stories:45", "stories:118"],
            "pool_ids_truncated": False,
            "pool_size": 3,
            "rows_in": 53,
            "rows_out": 53,
            "rows_overwritten": 20,
            "unique_documents": 33,
        },
        "version": "aed6482654d6d71a",
    },
    "ingest": {
        "files": {"part-00000.parquet": "15d89b37fa88ff802542ccf3924521067af60909464c6abb1f8a2b3e6b7d84bc"},
        "rows": 120,
        "stats": {
            "documents": 120,
            "dropped_empty": 0,
            "files": [{"documents": 120, "dropped_empty": 0, "path": "stories.txt"}],
        },
        "version": "4f961a31f498c78e",
    },
    "stats": {
        "artefacts": [
            {
                "rows": 0,
                "stats": {
                    "bytes": 5345,
                    "compression_ratio": 0.171391513804,
                    "distinct_1gram_ratio": 0.0766666666667,
                    "distinct_2gram_ratio": 0.280732345248,
                    "distinct_4gram_ratio": 0.463016330451,
                    "documents": 53,
                    "exact_duplicate_share": 0.0,
                    "largest_cluster_share": 0.0188679245283,
                    "mean_chars": 100.849056604,
                    "mean_words": 22.641509434,
                    "median_chars": 99.0,
                    "median_words": 22.0,
                    "near_duplicate_method": "minhash threshold=0.8 seed=0",
                    "near_duplicate_share": 0.0,
                    "tokens": None,
                    "top_repeated": [],
                    "type_token_ratio": 0.758828720205,
                    "unigram_entropy_bits": 5.1719951178,
                    "unique_document_share": 1.0,
                },
                "version": "b2e53042bda3b2b8",
            }
        ],
        "dataset": "pin-n@aed6482654d6d71a",
        "values": {
            "bytes": 5345,
            "compression_ratio": 0.171391513804,
            "distinct_1gram_ratio": 0.0766666666667,
            "distinct_2gram_ratio": 0.280732345248,
            "distinct_4gram_ratio": 0.463016330451,
            "documents": 53,
            "exact_duplicate_share": 0.0,
            "largest_cluster_share": 0.0188679245283,
            "mean_chars": 100.849056604,
            "mean_words": 22.641509434,
            "median_chars": 99.0,
            "median_words": 22.0,
            "near_duplicate_method": "minhash threshold=0.8 seed=0",
            "near_duplicate_share": 0.0,
            "tokens": None,
            "top_repeated": [],
            "type_token_ratio": 0.758828720205,
            "unigram_entropy_bits": 5.1719951178,
            "unique_document_share": 1.0,
        },
    },
    "stats_tokens": {
        "artefacts": [
            {
                "rows": 0,
                "stats": {
                    "bytes": 5359,
                    "compression_ratio": 0.113287747182,
                    "distinct_1gram_ratio": 0.0728987993139,
                    "distinct_2gram_ratio": 0.194968553459,
                    "distinct_4gram_ratio": 0.280039721946,
                    "documents": 53,
                    "exact_duplicate_share": 0.283018867925,
                    "largest_cluster_share": 0.301886792453,
                    "mean_chars": 101.113207547,
                    "mean_words": 22.0,
                    "median_chars": 96.0,
                    "median_words": 21.0,
                    "near_duplicate_method": "minhash threshold=0.8 seed=0",
                    "near_duplicate_share": 0.283018867925,
                    "tokens": 2247,
                    "top_repeated": [
                        {
                            "count": 16,
                            "preview": "Story 82: found old cat stone found old "
                            "cat stone found old cat stone found. "
                            "It ",
                        }
                    ],
                    "type_token_ratio": 0.716558674796,
                    "unigram_entropy_bits": 4.89050013445,
                    "unique_document_share": 0.698113207547,
                },
                "version": "8cd6d9d80cf2d887",
            }
        ],
        "dataset": "pin-d@7080aa8fe941e5e3",
        "values": {
            "bytes": 5359,
            "compression_ratio": 0.113287747182,
            "distinct_1gram_ratio": 0.0728987993139,
            "distinct_2gram_ratio": 0.194968553459,
            "distinct_4gram_ratio": 0.280039721946,
            "documents": 53,
            "exact_duplicate_share": 0.283018867925,
            "largest_cluster_share": 0.301886792453,
            "mean_chars": 101.113207547,
            "mean_words": 22.0,
            "median_chars": 96.0,
            "median_words": 21.0,
            "near_duplicate_method": "minhash threshold=0.8 seed=0",
            "near_duplicate_share": 0.283018867925,
            "tokens": 2247,
            "top_repeated": [
                {
                    "count": 16,
                    "preview": "Story 82: found old cat stone found old cat stone found old cat stone found. It ",
                }
            ],
            "type_token_ratio": 0.716558674796,
            "unigram_entropy_bits": 4.89050013445,
            "unique_document_share": 0.698113207547,
        },
    },
    "subset": {
        "files": {"part-00000.parquet": "74314eca7b0b7302b128d83ae8b70e750f0e36372f56c63f3dced33ba4a1873f"},
        "rows": 53,
        "stats": {
            "chars_out": 5467,
            "est_tokens_in": 2731,
            "est_tokens_out": 1366,
            "row_share": 0.504761904762,
            "rows_in": 105,
            "rows_out": 53,
        },
        "version": "89769851423adfb0",
    },
    "tokenizer": {
        "files": {"tokenizer.json": "eadcb29dcfa097fa863f2e68a8fa6640cf8cdd4b7ff337a8fbc694c48c73a438"},
        "rows": 0,
        "stats": {"trained_on_rows": 105, "vocab_size": 300},
        "version": "a62a431bec478792",
    },
}
