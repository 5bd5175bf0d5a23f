"""Byte-level BPE tokenizer: exact round trips, determinism, loading tokenizer.json files."""

from __future__ import annotations

from pathlib import Path

import pytest

from datadiet.errors import InputError, UsageError
from datadiet.schema import EOT
from datadiet.train.tokenizer import eot_id, load_tokenizer, train_tokenizer

CORPUS = [
    "Once upon a time there was a little girl named Lily.",
    "She liked to play outside in the sun with her dog, Max.",
    "  Leading spaces, tabs\tand\nnewlines\n\nstay exactly as they were.  ",
    "Unicode: café, naïve, “quotes”, mojibake â€œ, emoji 🙂, CJK 漢字.",
] * 20


@pytest.fixture
def shared_data() -> Path:
    """The shared real-text folder, or a skip where this checkout has none."""
    path = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
    if not (path / "tinystories-valid-1.txt").is_file():
        pytest.skip(f"real text not found at {path}")
    return path


def read_docs(path: Path) -> list[str]:
    """Documents of a shared/data file (separated by a line that is exactly <|endoftext|>)."""
    docs: list[str] = []
    current: list[str] = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line == EOT:
            docs.append("\n".join(current))
            current = []
        else:
            current.append(line)
    return docs


def test_round_trip_and_special_token() -> None:
    tok = train_tokenizer(CORPUS, 300)
    assert tok.get_vocab_size() == 300
    assert eot_id(tok) == 0
    for text in [*set(CORPUS), "never seen: ∮ E⋅da = Q, 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \x00\x7f"]:
        assert tok.decode(tok.encode(text).ids, skip_special_tokens=False) == text
    ids = tok.encode(f"a{EOT}b").ids
    assert ids.count(0) == 1


def test_training_is_deterministic() -> None:
    assert train_tokenizer(CORPUS, 300).to_str() == train_tokenizer(CORPUS, 300).to_str()


def test_vocab_out_of_range() -> None:
    with pytest.raises(UsageError, match="--vocab 100 is out of range"):
        train_tokenizer(CORPUS, 100)


def test_load_saved_tokenizer(tmp_path: Path) -> None:
    tok = train_tokenizer(CORPUS, 300)
    tok.save(str(tmp_path / "tokenizer.json"))
    for where in (tmp_path / "tokenizer.json", tmp_path):
        loaded = load_tokenizer(where)
        assert loaded.encode(CORPUS[3]).ids == tok.encode(CORPUS[3]).ids


def test_load_rejects_other_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_tokenizer(tmp_path / "missing.json")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match=r"is not a Hugging Face tokenizer\.json"):
        load_tokenizer(tmp_path / "notes.txt")
    (tmp_path / "other.json").write_text('{"model": 3}')
    with pytest.raises(InputError, match=r"is not a Hugging Face tokenizer\.json"):
        load_tokenizer(tmp_path / "other.json")


def test_round_trip_on_real_text(shared_data: Path) -> None:
    train_docs = read_docs(shared_data / "tinystories-train-1.txt")
    assert len(train_docs) == 2316
    tok = train_tokenizer(train_docs, 2048)
    # The validation split holds 51 stories with mojibake and all use \n\n paragraphs: unseen shapes.
    for name in ("tinystories-valid-1.txt", "tinystories-train-3.txt", "sms-spam-collection-1.txt"):
        docs = read_docs(shared_data / name)
        encodings = tok.encode_batch(docs, add_special_tokens=False)
        assert tok.decode_batch([e.ids for e in encodings], skip_special_tokens=False) == docs
