#!/usr/bin/env python3
"""Writes tests/data/tokenizer/goldens.json: token ids from the Rust `tokenizers` library.

The C++ BpeTokenizer must give exactly the ids of Hugging Face's reference implementation. This
script encodes every tests/data/tokenizer/texts/*.txt (and the short strings of
formats-and-engines.md section C.2) with `tokenizers.Tokenizer.from_file`, the Python binding of the
Rust library, and stores the ids together with the library's own decode of them. Run it where the
package is installed (pip install tokenizers):

    python3 tools/make_tokenizer_goldens.py [--tokenizer resources/tokenizers/gpt-neox-20b.json]

TestBpeTokenizer skips the comparison while goldens.json does not exist.
"""
import argparse
import json
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent

# Short strings re-checked against the reference library (their ids are also hard-coded in the test,
# from section C.2, which were made with a JavaScript port).
INLINE = {
    "c2_hello_world": "Hello world",
    "c2_double_space": "hello  world",
    "c2_triple_space": "a   b",
    "c2_two_newlines": "x\n\ny",
    "c2_leading_space": " leading",
    "c2_python_indent": "def f():\n    return 1",
    "c2_capital": "The capital of France is",
    "c2_unicode": "naïve café 東京 🤗",
    "c2_endoftext": "<|endoftext|>The",
    "mongolian_vowel_separator": "a\u180eb \u180e\u180e c\u180e d",
    # U+180E is not White_Space (Oniguruma's \s) but is in PCRE2's \s: these split differently.
    "mvs_after_newlines": "\n\n\u180e",
    "mvs_between_newlines_and_letter": "x\n\n\u180ey",
    "mvs_after_tabs": "\t\t\u180e.",
    "mvs_after_nbsp": "a\u00a0\u00a0\u180eb",
    "spaces_then_letter": " " * 30 + "x" + " " * 25 + "\n",
    "nfc_then_added_token": "e\u0301  x\u0301",
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", default=str(REPO / "resources" / "tokenizers" / "gpt-neox-20b.json"))
    ap.add_argument("--texts", default=str(REPO / "tests" / "data" / "tokenizer" / "texts"))
    ap.add_argument("--out", default=str(REPO / "tests" / "data" / "tokenizer" / "goldens.json"))
    args = ap.parse_args()

    import tokenizers
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(args.tokenizer)
    cases = []

    def add(name, text, inline):
        # The ByteLevel post-processor adds no tokens, so add_special_tokens does not matter here.
        ids = tok.encode(text, add_special_tokens=False).ids
        case = {"name": name}
        if inline:
            case["text"] = text
        case["ids"] = ids
        case["decoded"] = tok.decode(ids, skip_special_tokens=False)
        cases.append(case)

    for name, text in INLINE.items():
        add(name, text, True)
    files = sorted(pathlib.Path(args.texts).glob("*.txt"))
    if not files:
        sys.exit(f"no texts in {args.texts}")
    for path in files:
        # Bytes in, strict UTF-8: no newline translation, no silent replacement.
        add(path.stem, path.read_bytes().decode("utf-8"), False)

    out = {
        "tokenizer": "gpt-neox-20b",
        "library": f"tokenizers {tokenizers.__version__}",
        "cases": cases,
    }
    pathlib.Path(args.out).write_text(json.dumps(out, ensure_ascii=True, indent=1) + "\n", encoding="ascii")
    print(f"wrote {len(cases)} cases to {args.out} with tokenizers {tokenizers.__version__}")


if __name__ == "__main__":
    main()
