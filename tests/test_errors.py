"""The bad-input catalogue of issue 8, command by command, through typer's CliRunner.

Every case must end with exit code 2 (usage error) or 1 (failure at run time), exactly one line on
stderr that starts with "error: " and names the problem, no traceback, and the store unchanged.
docs/errors.md lists the same catalogue; keep the two in step.
"""

from __future__ import annotations

import errno
import gzip
import importlib.util
import json
import random
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from typer.testing import CliRunner

from datadiet.cli import app
from datadiet.store import PartWriter, Store
from tests.helpers import store_snapshot

# Only the `--address` case imports Ray, whose modules warn about their own deprecated settings.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")

# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A small store built once: corpus c-train/c-val, tokenizer c-train, dedupe dd, and 17 versions of `amb`."""
    root = tmp_path_factory.mktemp("template") / "store"
    runner = CliRunner()
    for args in (
        ["corpus", "--stories", "300", "--val-stories", "50", "--name", "c"],
        ["tokenizer", "train", "c-train", "--vocab", "300"],
        ["dedupe", "c-train", "--name", "dd"],
    ):
        result = runner.invoke(app, [*args, "--store", str(root), "--quiet"])
        assert result.exit_code == 0, result.output
    store = Store(root)
    # 17 versions over 16 hex digits: two of them share a first character, so that prefix is ambiguous.
    versions = [
        store.commit("amb", operation="t", params={"seed": s}, parents=[], build=lambda w: None).dataset.version
        for s in range(17)
    ]
    firsts = [v[0] for v in versions]
    return {"root": root, "ambiguous": next(c for c in firsts if firsts.count(c) > 1)}


def _inputs(d: Path) -> None:
    """One file (or folder) per kind of bad input."""
    d.mkdir()
    (d / "ok.txt").write_text("Tom had a red ball.\n<|endoftext|>\n", encoding="utf-8")
    (d / "empty.txt").write_text("")
    (d / "emptydir").mkdir()
    (d / "folder.txt").mkdir()
    (d / "nodata").mkdir()
    (d / "nodata" / "notes.md").write_text("not a corpus")
    (d / "binary.txt").write_bytes(b"abc\x00\x01\x02" * 10)
    (d / "latin1.txt").write_bytes(b"ok\ncaf\xe9\n")
    (d / "broken.jsonl").write_text('{"text": "a"}\n{oops\n')
    (d / "nofield.jsonl").write_text('{"body": "a"}\n')
    (d / "number.jsonl").write_text('{"text": 5}\n')
    (d / "null.jsonl").write_text('{"text": null}\n')
    (d / "list.jsonl").write_text("[1, 2]\n")
    (d / "surrogate.jsonl").write_text('{"text": "a \\ud800 b"}\n')
    # One line of 16 MiB + 1 byte: just past the default --max-doc-bytes.
    (d / "huge.txt").write_bytes(b"a" * (16 * 1024 * 1024 + 1) + b"\n")
    pq.write_table(pa.table({"body": ["a", "b"]}), d / "wrong.parquet")
    pq.write_table(pa.table({"text": [1, 2]}), d / "int.parquet")
    (d / "conflict").mkdir()
    (d / "conflict" / "a.jsonl").write_text('{"text": "a", "n": 1}\n')
    (d / "conflict" / "b.jsonl").write_text('{"text": "b", "n": "one"}\n')
    (d / "fake.parquet").write_bytes(b"not parquet at all")
    (d / "noext").write_text("x")
    rng = random.Random(0)
    data = b"".join(f"story {rng.random()}\n<|endoftext|>\n".encode() for _ in range(3000))
    (d / "cut.txt.gz").write_bytes(gzip.compress(data)[:20_000])
    (d / "cut.txt.zst").write_bytes(zstandard.ZstdCompressor().compress(data)[:20_000])
    (d / "garbage.txt.zst").write_bytes(b"not zstd at all")
    (d / "bad.toml").write_text("sizes = [0.5\n")
    (d / "blocker").write_text("a regular file where a folder should be")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bad input files, made once (the 16 MiB line is not worth writing per test); tests only read them."""
    d = tmp_path_factory.mktemp("inputs") / "in"
    _inputs(d)
    return d


@pytest.fixture
def env(template: dict[str, Any], inputs: Path, store_path: Path) -> dict[str, Any]:
    shutil.copytree(template["root"], store_path)
    return {"store": store_path, "in": inputs, "amb": template["ambiguous"]}


def _args(args: list[str], env: dict[str, Any]) -> list[str]:
    return [a.replace("{in}", str(env["in"])).replace("{amb}", env["amb"]) for a in args]


def _check(runner: CliRunner, env: dict[str, Any], args: list[str], code: int, message: str) -> None:
    before = store_snapshot(env["store"])
    result = runner.invoke(app, _args(args, env))
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert store_snapshot(env["store"]) == before


# -- the catalogue -------------------------------------------------------------------------------

# (args, exit code, a piece of the message). "{in}" is the folder of bad inputs, "{amb}" an ambiguous prefix.
CATALOGUE: list[tuple[list[str], int, str]] = [
    # ingest: every kind of bad file
    (["ingest", "{in}/missing.txt", "-n", "x"], 2, "no such file or folder"),
    (["ingest", "{in}/*.nothing", "-n", "x"], 2, "no files match"),
    (["ingest", "file://{in}/missing.jsonl", "-n", "x"], 2, "missing.jsonl: no such file or folder"),
    (["ingest", "file://{in}/*.nothing", "-n", "x"], 2, "no files match 'file://"),
    (["ingest", "zz://x/y", "-n", "x"], 2, "zz://x/y: cannot open (Unrecognized filesystem type"),
    (["ingest", "s3://buck*/a.txt", "-n", "x"], 2, "wildcards go in the path, not in the bucket or host"),
    (["ingest", "{in}/emptydir", "-n", "x"], 2, "folder holds no .txt, .jsonl or .parquet files"),
    (["ingest", "{in}/nodata", "-n", "x"], 2, "folder holds no .txt, .jsonl or .parquet files"),
    (["ingest", "{in}/empty.txt", "-n", "x"], 2, "no documents found"),
    (["ingest", "{in}/binary.txt", "-n", "x"], 2, "binary data (NUL byte) at byte 3"),
    (["ingest", "{in}/binary.txt", "-n", "x", "--format", "jsonl"], 2, "binary data (NUL byte)"),
    (["ingest", "{in}/latin1.txt", "-n", "x"], 2, "invalid UTF-8 at byte 6; fix the file or pass --errors replace"),
    (["ingest", "{in}/broken.jsonl", "-n", "x"], 2, "line 2 is not valid JSON"),
    (["ingest", "{in}/nofield.jsonl", "-n", "x"], 2, "line 1 has no field 'text'"),
    (["ingest", "{in}/nofield.jsonl", "-n", "x", "--text-field", "body", "--id-field", "id"], 2, "has no field 'id'"),
    (["ingest", "{in}/number.jsonl", "-n", "x"], 2, "field 'text' is int, expected a string"),
    (["ingest", "{in}/null.jsonl", "-n", "x"], 2, "field 'text' is NoneType, expected a string"),
    (["ingest", "{in}/list.jsonl", "-n", "x"], 2, "line 1 is a JSON list, expected an object"),
    (["ingest", "{in}/surrogate.jsonl", "-n", "x"], 2, "unpaired surrogate escape"),
    (["ingest", "{in}/huge.txt", "-n", "x"], 2, "line 1 is longer than 16777216 bytes"),
    (["ingest", "{in}/ok.txt", "-n", "x", "--max-doc-bytes", "10"], 2, "longer than 10 bytes"),
    (["ingest", "{in}/wrong.parquet", "-n", "x"], 2, "Parquet file has no column 'text' (columns: body)"),
    (["ingest", "{in}/int.parquet", "-n", "x"], 2, "column 'text' has type int64, expected a string column"),
    (["ingest", "{in}/conflict", "-n", "x"], 2, "field 'n' has incompatible types across the inputs: int64 in"),
    (["ingest", "{in}/fake.parquet", "-n", "x"], 2, "not a readable Parquet file"),
    (["ingest", "{in}/noext", "-n", "x"], 2, "unknown file type"),
    (["ingest", "{in}/cut.txt.gz", "-n", "x"], 2, "cannot read (Compressed file ended"),
    (["ingest", "{in}/cut.txt.zst", "-n", "x"], 2, "ends in the middle of a frame"),
    (["ingest", "{in}/garbage.txt.zst", "-n", "x"], 2, "not valid zstd data"),
    (["ingest", "{in}/ok.txt"], 2, "Missing option '--name'"),
    (["ingest", "{in}/ok.txt", "-n", "../x"], 2, "invalid name '../x'"),
    (["ingest", "{in}/ok.txt", "-n", "x", "--format", "csv"], 2, "--format must be one of"),
    (["ingest", "{in}/ok.txt", "-n", "x", "--errors", "ignore"], 2, "--errors must be 'strict' or 'replace'"),
    (["ingest", "{in}/ok.txt", "-n", "x", "--separator", " "], 2, "--separator must not be empty"),
    (["ingest", "{in}/ok.txt", "-n", "x", "--max-doc-bytes", "0"], 2, "Invalid value for '--max-doc-bytes'"),
    (["ingest", "{in}/ok.txt", "-n", "x", "--max-doc-bytes", "lots"], 2, "valid integer"),
    (["ingest", "{in}/ok.txt", "-n", "x", "--engine", "spark"], 2, "--engine must be one of local, ray"),
    # corpus
    (["corpus", "--stories", "0"], 2, "Invalid value for '--stories'"),
    (["corpus", "--stories", "many"], 2, "valid integer"),
    (["corpus", "--val-stories", "0"], 2, "Invalid value for '--val-stories'"),
    (["corpus", "--near-dup-rate", "1"], 2, "near_dup_rate must be a number in [0, 1)"),
    (["corpus", "--near-dup-rate", "-0.1"], 2, "near_dup_rate must be a number in [0, 1)"),
    (["corpus", "--near-dup-rate", "nan"], 2, "--near-dup-rate must be a finite number, not nan"),
    (["corpus", "--near-dup-rate", "x"], 2, "valid number"),
    (["corpus", "--seed", "-1"], 2, "seed must be a non-negative integer"),
    (["corpus", "--stories", "10", "--name", "../x"], 2, "invalid name"),
    # listing and looking
    (["ls", "--kind", "cats"], 2, "--kind must be one of"),
    (["ls", "nothing"], 2, "no dataset named 'nothing'"),
    (["ls", "--kind", "runs", "c-train"], 2, "no run named 'c-train'"),
    # a store URI that cannot be used
    (["ls", "--store", "foo://x/y"], 2, "cannot open store foo://x/y: Unrecognized filesystem type"),
    (["ls", "--store", "file://relative/x"], 2, "cannot open store file://relative/x"),
    (["ls", "--store", "file://{in}/ok.txt"], 1, "is a file, not a folder; point --store at a folder"),
    (["show", "nothing"], 2, "nothing named 'nothing'"),
    (["show", "c-train@ffffffffff"], 2, "dataset 'c-train' has no version starting with 'ffffffffff'"),
    (["show", "amb@{amb}"], 2, "is ambiguous"),
    (["show", "@abc"], 2, "invalid ref '@abc'"),
    (["head", "nothing"], 2, "no dataset named 'nothing'"),
    (["head", "amb@{amb}"], 2, "is ambiguous"),
    (["head", "c-train", "-n", "-1"], 2, "Invalid value for '-n'"),
    (["head", "c-train", "-n", "x"], 2, "valid integer"),
    (["lineage", "nothing"], 2, "nothing named 'nothing'"),
    (["lineage", "amb@{amb}"], 2, "is ambiguous"),
    (["export", "nothing", "{in}/out.txt"], 2, "no dataset named 'nothing'"),
    (["export", "c-train", "{in}/out.csv"], 2, "cannot export to 'out.csv'"),
    (["export", "c-train", "{in}/folder.txt"], 2, "is a folder; give a file path"),
    (["export", "c-train", "{in}/blocker/out.txt"], 1, "cannot write"),
    # dedupe and clusters
    (["dedupe", "nothing"], 2, "no dataset named 'nothing'"),
    (["dedupe", "amb@{amb}"], 2, "is ambiguous"),
    (["dedupe", "c-train", "--threshold", "1.5"], 2, "--threshold must be a number strictly between 0 and 1"),
    (["dedupe", "c-train", "--threshold", "0"], 2, "--threshold must be a number strictly between 0 and 1"),
    (["dedupe", "c-train", "--threshold", "nan"], 2, "--threshold must be a finite number, not nan"),
    (["dedupe", "c-train", "--threshold", "abc"], 2, "Invalid value for '--threshold'"),
    (["dedupe", "c-train", "--num-perm", "0"], 2, "--num-perm must be an integer from 1 to 4096"),
    (["dedupe", "c-train", "--num-perm", "x"], 2, "Invalid value for '--num-perm'"),
    (["dedupe", "c-train", "--bands", "7"], 2, "is not divisible by --bands 7"),
    (["dedupe", "c-train", "--rows", "5"], 2, "is not divisible by --rows 5"),
    (["dedupe", "c-train", "--bands", "0", "--rows", "3"], 2, "--bands must be a positive integer"),
    (["dedupe", "c-train", "--bands", "200", "--rows", "1"], 2, "exceeds --num-perm 128"),
    (["dedupe", "c-train", "--ngram", "0"], 2, "--ngram must be an integer from 1 to 1000"),
    (["dedupe", "c-train", "--method", "fuzzy"], 2, "--method must be one of"),
    (["dedupe", "c-train", "--shingle", "line"], 2, "--shingle must be one of"),
    (["dedupe", "c-train", "--keep", "worst"], 2, "--keep must be one of"),
    (["dedupe", "c-train", "--seed", "-1"], 2, "--seed must be an integer from 0 to 2^32-1"),
    (["dedupe", "c-train", "--workers", "0"], 2, "Invalid value for '--workers'"),
    (["dedupe", "c-train", "--against", "nothing"], 2, "no dataset named 'nothing'"),
    (["dedupe", "c-train", "--against", "c-train"], 2, "is the version being deduplicated"),
    (["dedupe", "c-train", "-n", "../x"], 2, "invalid name"),
    (["dedupe", "c-train", "--engine", "spark"], 2, "--engine must be one of local, ray"),
    # Needs Ray (the address is checked when joining the cluster); CI installs the extra.
    *(
        [(["dedupe", "c-train", "--engine", "ray", "--address", "nonsense"], 2, "--address must be auto or HOST:PORT")]
        if importlib.util.find_spec("ray")
        else []
    ),
    (["clusters", "nothing"], 2, "no dataset named 'nothing'"),
    (["clusters", "c-val"], 2, "was not written by `curate dedupe`"),
    (["clusters", "dd", "--top", "-1"], 2, "Invalid value for '--top'"),
    (["clusters", "dd", "--id", "nope"], 2, "no document with id 'nope'"),
    # duplicate
    (["duplicate", "nothing", "--rate", "0.5"], 2, "no dataset named 'nothing'"),
    (["duplicate", "c-train"], 2, "Missing option '--rate'"),
    (["duplicate", "c-train", "--rate", "2"], 2, "--rate must be between 0 and 1"),
    (["duplicate", "c-train", "--rate", "-0.1"], 2, "--rate must be between 0 and 1"),
    (["duplicate", "c-train", "--rate", "nan"], 2, "--rate must be a finite number, not nan"),
    (["duplicate", "c-train", "--rate", "x"], 2, "Invalid value for '--rate'"),
    (["duplicate", "c-train", "--rate", "0.5", "--pool", "0"], 2, "--pool must be at least 1"),
    (["duplicate", "c-train", "--rate", "0.5", "--pool", "100000"], 2, "--pool 100000 is larger than the"),
    (["duplicate", "c-train", "--rate", "0.5", "--pool", "x"], 2, "Invalid value for '--pool'"),
    (["duplicate", "c-train", "--rate", "0.5", "--copies", "0"], 2, "--copies must be at least 1"),
    (["duplicate", "c-train", "--rate", "0.5", "--near", "1"], 2, "--near must be at least 0 and below 1"),
    (["duplicate", "c-train", "--rate", "0.5", "--near", "-0.5"], 2, "--near must be at least 0 and below 1"),
    (["duplicate", "c-train", "--rate", "0.5", "--pool", "2", "--copies", "3"], 2, "give only one of them"),
    (["duplicate", "c-train", "--rate", "0.5", "--doc", "missing"], 2, "--doc 'missing' is not an id in the dataset"),
    (["duplicate", "c-train", "--rate", "0.5", "--seed", "-1"], 2, "--seed must be >= 0"),
    (["duplicate", "nothing", "--rate", "0.5", "--engine", "spark"], 2, "--engine must be one of local, ray"),
    # corrupt
    (["corrupt", "nothing", "--kind", "typos", "--rate", "0.1"], 2, "no dataset named 'nothing'"),
    (["corrupt", "c-train", "--rate", "0.1"], 2, "Missing option '--kind'"),
    (["corrupt", "c-train", "--kind", "typos"], 2, "Missing option '--rate'"),
    (["corrupt", "c-train", "--kind", "noise", "--rate", "0.1"], 2, "'noise' is not one of 'typos', 'shuffle'"),
    (["corrupt", "c-train", "--kind", "typos", "--rate", "2"], 2, "--rate must be between 0 and 1"),
    (["corrupt", "c-train", "--kind", "typos", "--rate", "nan"], 2, "--rate must be a finite number"),
    (["corrupt", "c-train", "--kind", "typos", "--rate", "0.1", "--seed", "-1"], 2, "--seed must be >= 0"),
    (["corrupt", "c-train", "--kind", "mix", "--rate", "0.1"], 2, "--kind mix needs --from OTHER"),
    (
        ["corrupt", "c-train", "--kind", "typos", "--rate", "0.1", "--from", "c-val"],
        2,
        "--from is only for --kind mix",
    ),
    (["corrupt", "c-train", "--kind", "mix", "--rate", "0.1", "--from", "nothing"], 2, "no dataset named 'nothing'"),
    (
        ["corrupt", "c-train", "--kind", "mix", "--rate", "0.1", "--from", "c-train"],
        2,
        "is the version being corrupted",
    ),
    (["corrupt", "c-train", "--kind", "typos", "--rate", "0.1", "--engine", "spark"], 2, "--engine must be one of"),
    *(
        [
            (
                ["corrupt", "c-train", "--kind", "typos", "--rate", "0.1", "--engine", "ray", "--address", "host:"],
                2,
                "--address must be auto or HOST:PORT",
            )
        ]
        if importlib.util.find_spec("ray")
        else []
    ),
    # subset
    (["subset", "nothing", "--fraction", "0.5"], 2, "no dataset named 'nothing'"),
    (["subset", "c-train"], 2, "give exactly one of --fraction, --docs, --tokens (got none)"),
    (["subset", "c-train", "--fraction", "0"], 2, "--fraction must be above 0 and at most 1"),
    (["subset", "c-train", "--fraction", "1.5"], 2, "--fraction must be above 0 and at most 1"),
    (["subset", "c-train", "--fraction", "nan"], 2, "--fraction must be a finite number, not nan"),
    (["subset", "c-train", "--fraction", "x"], 2, "Invalid value for '--fraction'"),
    (["subset", "c-train", "--docs", "0"], 2, "--docs must be at least 1"),
    (["subset", "c-train", "--docs", "100000"], 2, "--docs 100000 is more than the 300 documents"),
    (["subset", "c-train", "--tokens", "0"], 2, "--tokens must be at least 1"),
    (["subset", "c-train", "--tokens", "100000000"], 2, "is more than the ~"),
    (["subset", "c-train", "--fraction", "0.5", "--docs", "3"], 2, "(got --fraction, --docs)"),
    (["subset", "c-train", "--fraction", "0.5", "--seed", "-1"], 2, "--seed must be >= 0"),
    (["subset", "c-train", "--fraction", "0.5", "--engine", "spark"], 2, "--engine must be one of local, ray"),
    # tokenizer
    (["tokenizer", "train", "nothing"], 2, "no dataset named 'nothing'"),
    (["tokenizer", "train", "c-train", "--vocab", "0"], 2, "--vocab must be between 257 and 1048576"),
    (["tokenizer", "train", "c-train", "--vocab", "100000000"], 2, "--vocab must be between 257 and 1048576"),
    (["tokenizer", "train", "c-train", "--vocab", "x"], 2, "Invalid value for '--vocab'"),
    (["tokenizer", "train", "c-train", "-n", "../x"], 2, "invalid name"),
    (["tokenizer", "train"], 2, "Missing argument"),
    # train
    (["train", "nothing", "--val", "c-val"], 2, "no dataset named 'nothing'"),
    (["train", "c-train"], 2, "Missing option '--val'"),
    (["train", "c-train", "--val", "nothing"], 2, "no dataset named 'nothing'"),
    (["train", "c-train", "--val", "amb@{amb}"], 2, "is ambiguous"),
    (["train", "c-train", "--val", "c-val", "--steps", "0"], 2, "Invalid value for '--steps'"),
    (["train", "c-train", "--val", "c-val", "--steps", "x"], 2, "Invalid value for '--steps'"),
    (["train", "c-train", "--val", "c-val", "--seed", "-1"], 2, "Invalid value for '--seed'"),
    (["train", "c-train", "--val", "c-val", "--set", "unknown=1"], 2, "unknown setting 'unknown' in --set"),
    (
        ["train", "c-train", "--val", "c-val", "--set", "lr=abc"],
        2,
        "train setting lr must be a valid number, not 'abc'",
    ),
    (["train", "c-train", "--val", "c-val", "--set", "lr=-1"], 2, "train setting lr must be greater than 0, not -1"),
    (["train", "c-train", "--val", "c-val", "--set", "lr"], 2, "--set 'lr' is not KEY=VALUE"),
    (["train", "c-train", "--val", "c-val", "--set", "steps=0"], 2, "train setting steps must be at least 1"),
    (["train", "c-train", "--val", "c-val", "--set", "batch_size=0"], 2, "batch_size must be at least 1"),
    (["train", "c-train", "--val", "c-val", "--preset", "huge"], 2, "unknown preset 'huge'"),
    (["train", "c-train", "--val", "c-val", "--tokenizer", "nothing"], 2, "no tokenizer named 'nothing'"),
    (["train", "c-train", "--val", "c-val", "--tokenizer", "{in}/ok.txt"], 2, "is not a Hugging Face tokenizer.json"),
    (["train", "c-train", "--val", "c-val", "--tokenizer", "{in}/missing.json"], 2, "does not exist"),
    (["train", "dd", "--val", "c-val"], 2, "no tokenizer named 'dd'"),
    # filter
    (["filter", "nothing", "--rule", "gopher"], 2, "no dataset named 'nothing'"),
    (["filter", "c-train"], 2, "give at least one --where or --rule"),
    (["filter", "c-train", "--rule", "nope"], 2, "unknown --rule 'nope'; choose one of"),
    (["filter", "c-train", "--rule", "word_count:min=x"], 2, "min must be a number or none"),
    (["filter", "c-train", "--rule", "word_count:min=9,max=1"], 2, "is above max"),
    (["filter", "c-train", "--where", "length(text) >>> 1"], 2, "is not a valid SQL condition"),
    (["filter", "c-train", "--where", "nope > 1"], 2, "cannot be evaluated on this dataset"),
    # diff
    (["diff", "nothing", "c-train"], 2, "no dataset named 'nothing'"),
    (["diff", "c-train", "amb@{amb}"], 2, "is ambiguous"),
    (["diff", "c-train"], 2, "Missing argument"),
    (["diff", "c-train", "c-val", "--examples", "-1"], 2, "Invalid value for '--examples'"),
    (["export-model", "nothing", "{in}/m"], 2, "no run named 'nothing'"),
    (["export-model", "nothing", "{in}/m", "--format", "onnx"], 2, "--format must be one of hf"),
    (["export", "c-train", "{in}/hfout", "--format", "csv"], 2, "--format must be one of auto, hf"),
    # generate
    (["generate", "nothing"], 2, "no run named 'nothing'"),
    (["generate", "c-train", "--temperature", "-1"], 2, "--temperature must be between 0 (greedy) and 100"),
    (["generate", "c-train", "--top-k", "0"], 2, "--top-k must be >= 1"),
    (["generate", "c-train", "--max-tokens", "0"], 2, "--max-tokens must be between 1 and 1000000"),
    (["generate", "c-train", "--num", "0"], 2, "Invalid value for '--num'"),
    # stats, eval, report
    (["stats", "nothing"], 2, "no dataset named 'nothing'"),
    (["stats", "amb@{amb}"], 2, "is ambiguous"),
    (["stats", "c-train", "--tokenizer", "nothing"], 2, "no tokenizer named 'nothing'"),
    (["stats", "c-train", "--engine", "spark"], 2, "--engine must be one of local, ray"),
    (["eval", "nothing"], 2, "no run named 'nothing'"),
    (["eval", "c-train", "--max-tokens", "0"], 2, "Invalid value for '--max-tokens'"),
    (["eval", "nothing", "--memorisation"], 2, "no run named 'nothing'"),
    (["eval", "nothing", "--memorisation", "--prefix-tokens", "0"], 2, "--prefix-tokens must be between 1 and"),
    (["eval", "nothing", "--memorisation", "--suffix-tokens", "0"], 2, "--suffix-tokens must be between 1 and"),
    (["eval", "nothing", "--memorisation", "--docs-per-class", "0"], 2, "--docs-per-class must be between 1 and"),
    (["report", "--sweep", "nothing"], 2, "no sweep named 'nothing'"),
    (["report"], 2, "give either RUNS... or --sweep ID"),
    (["report", "nothing", "--out", "{in}/rep"], 2, "no run named 'nothing'"),
    (["report", "c-train", "--sweep", "s"], 2, "give either RUNS... or --sweep ID"),
    (["relate"], 2, "give either RUNS... or --sweep ID"),
    (["relate", "--sweep", "nothing"], 2, "no sweep named 'nothing'"),
    (["relate", "nothing"], 2, "no run named 'nothing'"),
    # sweep and demo
    (["sweep", "--base", "c-train", "--val", "c-val", "--steps", "10,20", "--epochs", "1"], 2, "give one budget axis"),
    (["sweep", "--base", "c-train", "--val", "c-val", "--steps", "x"], 2, "--steps must be comma-separated integers"),
    (["sweep", "--base", "c-train", "--val", "c-val", "--parallel", "0"], 2, "--parallel must be 'auto' or a whole"),
    (["demo", "--parallel", "many"], 2, "--parallel must be 'auto' or a whole number from 1 to 4096, not 'many'"),
    (["sweep", "--base", "c-train", "--val", "c-val", "--epochs", "0"], 2, "--epochs[0] must be greater than 0"),
    (["sweep", "--base", "c-train", "--val", "c-val", "--repeat-fraction", "0.1"], 2, "needs both --repeat-fraction"),
    (["sweep", "--base", "c-train", "--val", "c-val", "--filter", "none,nonsense"], 2, "--filter level 'nonsense'"),
    (
        ["sweep", "--base", "c-train", "--val", "c-val", "--repeat-fraction", "0.1", "--repeat-count", "1"],
        2,
        "--repeat-count must be at least 2",
    ),
    (["sweep", "--base", "c-train", "--val", "c-val", "--corrupt", "typos"], 2, "is not KIND:RATES"),
    (["sweep", "--base", "c-train", "--val", "c-val", "--corrupt", "typos:0,5"], 2, "--rate must be between 0 and 1"),
    (["sweep", "--base", "c-train", "--val", "c-val", "--corrupt", "mix:0,0.1"], 2, "needs --corrupt-from OTHER"),
    (["sweep", "--base", "c-train", "--val", "c-val", "--corrupt-from", "c-val"], 2, "--corrupt-from needs --corrupt"),
    (["sweep"], 2, "a sweep needs --base and --val"),
    (["sweep", "--base", "c-train"], 2, "a sweep needs --base and --val"),
    (
        ["sweep", "--base", "c-train", "--val", "c-val", "--sizes", "0,2"],
        2,
        "--sizes[0] must be greater than 0, not 0.0",
    ),
    (
        ["sweep", "--base", "c-train", "--val", "c-val", "--sizes", "0.5,x"],
        2,
        "--sizes must be comma-separated numbers",
    ),
    (["sweep", "--base", "c-train", "--val", "c-val", "--sizes", ","], 2, "--sizes must have at least 1 value(s)"),
    (["sweep", "--base", "c-train", "--val", "c-val", "--rates", "x"], 2, "--rates must be comma-separated numbers"),
    (
        ["sweep", "--base", "c-train", "--val", "c-val", "--rates", "1.5"],
        2,
        "--rates[0] must be at most 1, not 1.5",
    ),
    (["sweep", "--base", "c-train", "--val", "c-val", "--seeds", "a"], 2, "--seeds must be comma-separated integers"),
    (["sweep", "--base", "c-train", "--val", "c-val", "--seeds", "-1"], 2, "--seeds[0] must be at least 0, not -1"),
    (["sweep", "--base", "c-train", "--val", "c-val", "--data-seeds", "-1"], 2, "--data-seeds[0] must be at least 0"),
    (["sweep", "--base", "c-train", "--val", "c-val", "--data-seeds", "0,0"], 2, "must not repeat a value"),
    (["sweep", "--base", "c-train", "--val", "c-val", "--data-seeds", "x"], 2, "--data-seeds must be comma-separated"),
    (["sweep", "--base", "c-train", "--val", "c-val", "--pool", "0"], 2, "Invalid value for '--pool'"),
    (
        ["sweep", "--base", "c-train", "--val", "c-val", "--pool", "2", "--copies", "2"],
        2,
        "give --pool or --copies, not both",
    ),
    (
        ["sweep", "--base", "c-train", "--val", "c-val", "--near", "1", "--dry-run"],
        2,
        "--near must be less than 1, not 1.0",
    ),
    (["sweep", "--base", "c-train", "--val", "c-val", "--steps", "0"], 2, "--steps must be at least 1, not 0"),
    (
        ["sweep", "--base", "c-train", "--val", "c-val", "--engine", "ray", "--store", "foo://x/y"],
        2,
        "cannot open store",
    ),
    *(  # checked before any step runs (the cluster is only reached once the data steps are done)
        [
            (
                ["sweep", "--base", "c-train", "--val", "c-val", "--engine", "ray", "--address", "h:"],
                2,
                "--address must be",
            )
        ]
        if importlib.util.find_spec("ray")
        else []
    ),
    (["sweep", "--base", "nothing", "--val", "c-val", "--dry-run"], 2, "no dataset named 'nothing'"),
    (["sweep", "--base", "c-train", "--val", "nothing", "--dry-run"], 2, "no dataset named 'nothing'"),
    (["sweep", "--config", "{in}/missing.toml"], 2, "no such file"),
    (["sweep", "--config", "{in}/bad.toml"], 2, "is not valid TOML"),
    (["demo", "--stories", "0"], 2, "Invalid value for '--stories'"),
    (["demo", "--stories", "x"], 2, "Invalid value for '--stories'"),
    (["demo", "--steps", "0"], 2, "Invalid value for '--steps'"),
    # maintenance
    (["verify", "nothing"], 2, "nothing named 'nothing'"),
    (["verify", "amb@{amb}"], 2, "is ambiguous"),
    (["gc", "--unreferenced"], 2, "unreferenced versions would be deleted; rerun with --yes"),
    (["bogus"], 2, "No such command 'bogus'"),
    (["ls", "--bogus"], 2, "No such option"),
]


def _id(case: tuple[list[str], int, str]) -> str:
    return " ".join(case[0])[:70]


@pytest.mark.parametrize(("args", "code", "message"), CATALOGUE, ids=[_id(c) for c in CATALOGUE])
def test_bad_input_is_one_line_and_changes_nothing(
    runner: CliRunner, env: dict[str, Any], args: list[str], code: int, message: str
) -> None:
    _check(runner, env, args, code, message)


def test_every_command_is_in_the_catalogue() -> None:
    # A new command must bring its bad inputs here (and to docs/errors.md).
    import typer.main

    names = set(typer.main.get_group(app).commands)
    covered = {c[0][0] for c in CATALOGUE} | {a[0] for a in STORE_COMMANDS}
    assert names - covered == set()


# -- a store path that cannot be used --------------------------------------------------------------

# Every command that opens the store; --store points at a regular file.
STORE_COMMANDS: list[list[str]] = [
    ["ingest", "{in}/ok.txt", "-n", "x"],
    ["corpus", "--stories", "10"],
    ["ls"],
    ["show", "c-train"],
    ["head", "c-train"],
    ["lineage", "c-train"],
    ["export", "c-train", "{in}/out.txt"],
    ["dedupe", "c-train"],
    ["clusters", "dd"],
    ["duplicate", "c-train", "--rate", "0.5"],
    ["corrupt", "c-train", "--kind", "typos", "--rate", "0.1"],
    ["subset", "c-train", "--fraction", "0.5"],
    ["tokenizer", "train", "c-train"],
    ["train", "c-train", "--val", "c-val"],
    ["runs"],
    ["stats", "c-train"],
    ["eval", "c-train"],
    ["report", "--sweep", "s"],
    ["sweep", "--base", "c-train", "--val", "c-val", "--dry-run"],
    ["verify"],
    ["gc"],
]


@pytest.mark.parametrize("args", STORE_COMMANDS, ids=[" ".join(a[:2]) for a in STORE_COMMANDS])
def test_store_that_is_a_file(runner: CliRunner, env: dict[str, Any], args: list[str]) -> None:
    _check(runner, env, [*args, "--store", "{in}/blocker"], 1, "is a file, not a folder; point --store")
    assert (env["in"] / "blocker").read_text() == "a regular file where a folder should be"


def test_store_below_a_file(runner: CliRunner, env: dict[str, Any]) -> None:
    _check(
        runner, env, ["ingest", "{in}/ok.txt", "-n", "x", "--store", "{in}/blocker/store"], 1, "cannot write to store"
    )


# -- a full disk -----------------------------------------------------------------------------------


def _enospc(*_: Any, **__: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


WRITERS: list[list[str]] = [
    ["ingest", "{in}/ok.txt", "-n", "x"],
    ["corpus", "--stories", "20", "--name", "tiny"],
    ["dedupe", "c-train", "--method", "exact"],
    ["duplicate", "c-train", "--rate", "0.5"],
    ["corrupt", "c-train", "--kind", "shuffle", "--rate", "0.5"],
    ["subset", "c-train", "--fraction", "0.5"],
    ["tokenizer", "train", "c-val", "--vocab", "280"],
    ["stats", "c-val"],
]


@pytest.mark.parametrize("where", ["data", "manifest"])
@pytest.mark.parametrize("args", WRITERS, ids=[" ".join(a[:2]) for a in WRITERS])
def test_full_disk(
    runner: CliRunner, env: dict[str, Any], monkeypatch: pytest.MonkeyPatch, args: list[str], where: str
) -> None:
    if where == "data":
        # Every byte a version holds goes through the writer, except dedupe's clusters file.
        monkeypatch.setattr(PartWriter, "write", _enospc)
        monkeypatch.setattr(PartWriter, "write_file", _enospc)
        monkeypatch.setattr("polars.DataFrame.write_parquet", _enospc)
    else:
        monkeypatch.setattr(Store, "_publish", _enospc)
    _check(runner, env, args, 1, "no space left on the device of store")
    assert [p.name for p in (env["store"] / ".tmp").iterdir()] == []  # the half-written version is gone


def test_full_disk_during_export(
    runner: CliRunner, env: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("polars.DataFrame.write_ndjson", _enospc)
    _check(runner, env, ["export", "c-train", str(tmp_path / "out" / "c.jsonl")], 1, "No space left on device")
    assert list((tmp_path / "out").iterdir()) == []  # no partial file


# -- good inputs next to the bad ones still work ----------------------------------------------------


def test_multi_frame_zstd_reads_every_frame(runner: CliRunner, env: dict[str, Any], tmp_path: Path) -> None:
    # The truncation check must not mistake a second frame for garbage.
    a = "".join(f"first {i}\n<|endoftext|>\n" for i in range(50)).encode()
    b = "".join(f"second {i}\n<|endoftext|>\n" for i in range(70)).encode()
    cctx = zstandard.ZstdCompressor()
    (tmp_path / "two.txt.zst").write_bytes(cctx.compress(a) + cctx.compress(b))
    result = runner.invoke(app, ["ingest", str(tmp_path / "two.txt.zst"), "-n", "two", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == 120


def test_surrogates_replaced_with_errors_replace(runner: CliRunner, env: dict[str, Any]) -> None:
    result = runner.invoke(
        app, ["ingest", str(env["in"] / "surrogate.jsonl"), "-n", "s", "--errors", "replace", "--json"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(runner.invoke(app, ["head", "s", "--json"]).stdout)
    assert rows[0]["text"] == "a \ufffd b"


def test_debug_shows_the_traceback(runner: CliRunner, env: dict[str, Any]) -> None:
    result = runner.invoke(app, ["dedupe", "c-train", "--threshold", "1.5", "--debug"])
    assert result.exit_code == 2 and "Traceback" in result.stderr and "--threshold must be" in result.stderr
