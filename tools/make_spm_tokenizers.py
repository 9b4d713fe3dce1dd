#!/usr/bin/env python3
"""SentencePiece-style (Llama / Mistral family) tokenizer.json files and their goldens (issue 13).

Makes, with the Rust `tokenizers` library (its Python binding), sentencepiece and transformers:

  resources/tokenizers/llama-style.json      BPE trained by `tokenizers` on the repository's own texts,
                                             byte fallback (<0x00>..<0xFF>), unk, Metaspace
                                             (prepend_scheme first, split false), the decoder chain
                                             Replace / ByteFallback / Fuse / Strip, <s> by TemplateProcessing.
                                             HGRN-2 and GLA models made here use it.
  tests/data/tokenizer/spm/trained-always/   the same model with Metaspace "always" + split, the Metaspace
                                             decoder, merges as "a b" strings, no template
  tests/data/tokenizer/spm/legacy/           a sentencepiece BPE model (byte_fallback) converted by
                                             transformers, written as Llama-2's legacy files are: normalizer
                                             Sequence[Prepend("▁"), Replace(" ", "▁")], no pre-tokenizer,
                                             unk <unk>, TemplateProcessing <s>; tokenizer_config.json
  tests/data/tokenizer/spm/metaspace-first/  the same sentencepiece model as transformers 5 converts it
                                             (Metaspace first, unk null, no template) with a
                                             tokenizer_config.json that says add_bos_token: true
  tests/data/tokenizer/spm/tokenizer.model   that sentencepiece model (its scores, no merges)
  tests/data/tokenizer/spm/unk-never/        llama-style's vocabulary and merges without byte fallback (what
                                             it lacks is <unk>, runs fused), Metaspace prepend_scheme never
                                             with split, the legacy decoder chain without Strip

--variants-only adds just the last one (from the committed llama-style.json) and its goldens to
goldens.json, leaving every other file as it is.

and tests/data/tokenizer/spm/goldens.json: for every file and text (tests/data/tokenizer/texts/*.txt and
the strings below) the ids, the byte offsets into the UTF-8 input, which tokens the template added, and
decode(ids) without skipping special tokens, all from the Rust library. For metaspace-first the
template transformers builds from add_bos_token is applied the same way.

Run where the packages are (the GPU machine):  python3 tools/make_spm_tokenizers.py
"""
import argparse
import glob
import json
import os
import pathlib
import shutil
import tempfile

REPO = pathlib.Path(__file__).resolve().parent.parent

INLINE = {
    "hello": "Hello world",
    "leading_space": " leading",
    "leading_spaces": "   three leading",
    "repeated_spaces": "a  b   c    d",
    "newlines": "line one\nline two\n\n\nafter blank lines\n",
    "million_newlines_sample": "\n" * 200,
    "tabs": "\tindented\t\ttwice",
    "emoji": "I ❤️ 🤗 and 👩‍👩‍👧 families 🇫🇷",
    "cjk": "東京は日本の首都です。北京是中国的首都。서울은 한국의 수도입니다.",
    "out_of_vocab": "ǅ ꙮ 𓀀 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u2581literal meta",
    "special_in_text": "<s>the beginning</s> and <unk> in the middle <s>",
    "special_after_space": "the <s> of",
    "empty": "",
    "only_space": " ",
    "passkey": "The grass is green. The sky is blue. The passkey is 68217. Remember it. 68217 is the passkey.",
    "mixed": "naïve café — “quotes” ‘single’ … ½ ² ∑ ∞ Ω",
    "combining": "e\u0301 a\u0308 n\u0303",
}


def corpus_text():
    parts = [(REPO / "resources" / "texts" / "kjv-heldout.txt").read_text(encoding="utf-8"),
             (REPO / "resources" / "texts" / "demo.txt").read_text(encoding="utf-8")]
    for p in sorted(glob.glob(str(REPO / "tests" / "data" / "tokenizer" / "texts" / "*.txt"))):
        parts.append(pathlib.Path(p).read_text(encoding="utf-8"))
    return "\n".join(parts)


def train_tokenizers_bpe(corpus_file, vocab_size):
    from tokenizers import Tokenizer, decoders as D, models, pre_tokenizers as P, trainers

    tk = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tk.pre_tokenizer = P.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    tk.decoder = D.Sequence([D.Replace("▁", " "), D.ByteFallback(), D.Fuse(), D.Strip(" ", 1, 0)])
    tr = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"], limit_alphabet=150,
                             min_frequency=2, show_progress=False)
    tk.train([corpus_file], tr)
    j = json.loads(tk.to_str())
    # The trainer has no byte tokens; appended after the learned vocabulary, as plain (non-special) tokens.
    v = j["model"]["vocab"]
    for b in range(256):
        v.setdefault("<0x%02X>" % b, len(v))
    return j


def template(bos_id):
    return {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [bos_id], "tokens": ["<s>"]}}}


def write(path, j):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(j, f, ensure_ascii=False, indent=1)
        f.write("\n")


def goldens_for(name, tokenizer_json, texts):
    from tokenizers import Tokenizer

    tk = Tokenizer.from_str(json.dumps(tokenizer_json))
    cases = []
    for tname, text in texts:
        enc = tk.encode(text)
        # Python gives character offsets; the engine's are bytes of the UTF-8 input.
        byte_at = [0]
        for ch in text:
            byte_at.append(byte_at[-1] + len(ch.encode("utf-8")))
        offsets = [[byte_at[b], byte_at[e]] for b, e in enc.offsets]
        cases.append({"tokenizer": name, "text_name": tname, "text": text, "ids": enc.ids, "offsets": offsets,
                      "template": enc.special_tokens_mask, "decoded": tk.decode(enc.ids, skip_special_tokens=False)})
    return cases


def unk_never(spm_dir, texts):
    j = json.load(open(REPO / "resources" / "tokenizers" / "llama-style.json", encoding="utf-8"))
    j["model"]["byte_fallback"] = False
    j["model"]["fuse_unk"] = True
    j["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never", "split": True}
    j["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}]}
    j["post_processor"] = None
    write(str(spm_dir / "unk-never" / "tokenizer.json"), j)
    return goldens_for("unk-never", j, texts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", type=int, default=3000)
    ap.add_argument("--variants-only", action="store_true")
    args = ap.parse_args()
    import sentencepiece as spm
    import tokenizers
    import transformers

    spm_dir = REPO / "tests" / "data" / "tokenizer" / "spm"
    texts = [(pathlib.Path(p).stem, pathlib.Path(p).read_text(encoding="utf-8"))
             for p in sorted(glob.glob(str(REPO / "tests" / "data" / "tokenizer" / "texts" / "*.txt")))]
    texts += list(INLINE.items())
    if args.variants_only:
        path = spm_dir / "goldens.json"
        g = json.load(open(path, encoding="utf-8"))
        g["cases"] = [c for c in g["cases"] if c["tokenizer"] != "unk-never"]
        g["cases"] += unk_never(spm_dir, texts)
        write(str(path), g)
        print(f"{len(g['cases'])} cases")
        return
    goldens = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            f.write(corpus_text())

        # 1. Trained by `tokenizers`: the built-in llama-style file and a variant of its pipeline.
        j = train_tokenizers_bpe(corpus, args.vocab)
        j["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
        j["post_processor"] = template(j["model"]["vocab"]["<s>"])
        write(str(REPO / "resources" / "tokenizers" / "llama-style.json"), j)
        goldens += goldens_for("llama-style", j, texts)
        k = json.loads(json.dumps(j))
        k["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}
        k["decoder"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}
        k["post_processor"] = None
        k["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in k["model"]["merges"]]
        write(str(spm_dir / "trained-always" / "tokenizer.json"), k)
        goldens += goldens_for("trained-always", k, texts)

        # 2. sentencepiece BPE, converted by transformers.
        spm.SentencePieceTrainer.train(input=corpus, model_prefix=os.path.join(tmp, "m"), model_type="bpe",
                                       vocab_size=1200, byte_fallback=True, character_coverage=0.9995, unk_id=0,
                                       bos_id=1, eos_id=2, pad_id=-1, normalization_rule_name="identity",
                                       remove_extra_whitespaces=False, minloglevel=2)
        os.makedirs(spm_dir, exist_ok=True)
        shutil.copy(os.path.join(tmp, "m.model"), spm_dir / "tokenizer.model")
        conv = os.path.join(tmp, "conv")
        os.makedirs(conv)
        shutil.copy(os.path.join(tmp, "m.model"), os.path.join(conv, "tokenizer.model"))
        from transformers import LlamaTokenizer

        t = LlamaTokenizer.from_pretrained(conv)
        out = os.path.join(tmp, "out")
        t.save_pretrained(out)
        first = json.load(open(os.path.join(out, "tokenizer.json"), encoding="utf-8"))
        # As transformers 5 writes it, with the add_bos_token a Llama tokenizer_config.json has.
        write(str(spm_dir / "metaspace-first" / "tokenizer.json"), first)
        write(str(spm_dir / "metaspace-first" / "tokenizer_config.json"),
              {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
               "unk_token": "<unk>", "tokenizer_class": "LlamaTokenizer"})
        bos = first["model"]["vocab"]["<s>"]
        with_bos = json.loads(json.dumps(first))
        with_bos["post_processor"] = template(bos)
        goldens += goldens_for("metaspace-first", with_bos, texts)

        legacy = json.loads(json.dumps(first))
        legacy["model"]["unk_token"] = "<unk>"
        legacy["normalizer"] = {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
        legacy["pre_tokenizer"] = None
        legacy["post_processor"] = template(bos)
        legacy["decoder"] = {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"},
            {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
        write(str(spm_dir / "legacy" / "tokenizer.json"), legacy)
        write(str(spm_dir / "legacy" / "tokenizer_config.json"),
              {"add_bos_token": True, "add_eos_token": False, "bos_token": {"content": "<s>", "__type": "AddedToken"},
               "eos_token": "</s>", "legacy": True, "tokenizer_class": "LlamaTokenizer"})
        goldens += goldens_for("legacy", legacy, texts)

    goldens += unk_never(spm_dir, texts)
    write(str(spm_dir / "goldens.json"),
          {"source": f"tools/make_spm_tokenizers.py; tokenizers {tokenizers.__version__}, "
                     f"transformers {transformers.__version__}, sentencepiece {spm.__version__}",
           "cases": goldens})
    print(f"{len(goldens)} cases")


if __name__ == "__main__":
    main()
