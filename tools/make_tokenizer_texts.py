#!/usr/bin/env python3
"""Writes the tokenizer test texts to tests/data/tokenizer/texts/*.txt.

Each text stresses one part of the Hugging Face byte-level BPE pipeline (added tokens, NFC, the
ByteLevel regex, BPE merges). The bytes are spelled out here, escapes included, so that nothing
(an editor, git's line-ending handling) can change them unnoticed. Run with any Python 3:

    python3 tools/make_tokenizer_texts.py

then, on a machine with the `tokenizers` package, tools/make_tokenizer_goldens.py.
"""
import pathlib
import unicodedata

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "tokenizer" / "texts"

TEXTS = {}

TEXTS["english_prose"] = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
    "foolishness. The quick brown fox jumps over the lazy dog; meanwhile, Dr. Smith (aged 42) said: "
    "\"Nobody expects the Spanish Inquisition!\" -- and nobody did.\n\n"
    "State-space models such as Mamba keep a fixed-size recurrent state instead of a growing key/value "
    "cache. That makes each new token cost the same, whether it is the 10th or the 100,000th; it also "
    "means the model must decide, token by token, what to forget. Researchers call this the "
    "\"forget gate\" problem -- a name borrowed from LSTMs (Hochreiter & Schmidhuber, 1997).\n\n"
    "Questions? Write to info@example.com or visit https://example.org/docs?page=2&lang=en#intro.\n"
    "Price: $19.99 (was $24.50), a 18.4% discount... Really!!! Are you sure?! Yes: 100%.\n"
)

TEXTS["cpp_code"] = r'''#include <iostream>
#include <vector>

namespace demo {

// Sum of squares; returns 0 for an empty input.
template <typename T>
T sumOfSquares(const std::vector<T>& values)
{
    T total{};
    for (const T& v : values) {
        if (v < T{}) {
            total += v * v; // negative values count too
        } else {
            total += v * v;
        }
    }
    return total;
}

} // namespace demo

int main(int argc, char** argv)
{
    std::vector<double> xs = {1.5, -2.25, 3e-4, 0x1p3};
    std::cout << "sum=" << demo::sumOfSquares(xs) << '\n';
    return argc > 1 ? 1 : 0;
}
''' + "\tint tabbed = 1;\t// a tab-indented line\n\t\tint twoTabs = 2;\n"

TEXTS["python_code"] = (
    "import numpy as np\n"
    "\n"
    "\n"
    "class Accumulator:\n"
    "    \"\"\"Keeps a running mean.   \"\"\"\n"
    "\n"
    "    def __init__(self, size: int = 8) -> None:\n"
    "        self.total = np.zeros(size, dtype=np.float32)\n"
    "        self.count = 0\n"
    "\n"
    "    @property\n"
    "    def mean(self):\n"
    "        if self.count == 0:\n"
    "            raise ValueError(f\"no data yet ({self.count=})\")\n"
    "        return self.total / self.count    \n"
    "\n"
    "    def add(self, x):\n"
    "        for i, v in enumerate(x):\n"
    "            if v != v:  # NaN\n"
    "                continue\n"
    "            self.total[i] += v\n"
    "        self.count += 1\n"
    "        return {'count': self.count, \"ok\": True, 'ratio': 3/4, 'big': 1_000_000}\n"
    "\n"
    "\n"
    "if __name__ == '__main__':\n"
    "    acc = Accumulator()\n"
    "    print(acc.add([1, 2, 3]), acc.mean[:3], sep=' | ')\n"
)

TEXTS["unicode_mixed"] = (
    # precomposed Latin, then the same words with combining marks that NFC composes
    "Precomposed: naïve café résumé Ångström Øresund Łódź Straße œuvre.\n"
    "Combining: nai\u0308ve cafe\u0301 re\u0301sume\u0301 A\u030angstro\u0308m e\u0301\u0301 "
    "q\u0307\u0323 A\u0323\u0307 \u212b \u2126 \u1100\u1161\u11a8 \u1112\u1161\u11ab\u1100\u1173\u11af.\n"
    "CJK: 東京は日本の首都です。中文测试：你好，世界！한국어 문장입니다. カタカナとひらがな。\n"
    "Emoji: 🤗 👍🏽 👨‍👩‍👧‍👦 🇫🇷🇯🇵 ❤️ 🏳️‍🌈 ✅\n"
    "Arabic (RTL): مرحبا بالعالم، كيف حالك؟ ١٢٣٤ Hebrew: שלום עולם.\n"
    "Greek: Καλημέρα κόσμε, αβγδε ΑΒΓΔΕ ά ὰ ᾶ. Cyrillic: Привет, мир! Ёлка.\n"
    "Devanagari: नमस्ते दुनिया। Thai: สวัสดีชาวโลก Vietnamese: Tiếng Việt có dấu.\n"
    "Spaces: a\u00a0b\u00a0\u00a0c d\u2009e\u2009\u2009f g\u3000h\u3000\u3000i j\u202fk \u180e l\u2028m\u2029n\u0085o\n"
    "Symbols: ∑ ∫ √2 ≤ ≥ ≠ → ⇒ © ® ™ € £ ¥ ½ ² ³ ① ＡＢＣ１２３ ℕ ℝ \ufb01 \u00ad soft hyphen\n"
    "Misc: zero\u200bwidth BOM\ufeffinside replacement\ufffd private\ue000 astral\U0001d49c\U00010ffd\n"
)
# A paragraph in NFD: every accented letter is a base letter plus combining marks.
TEXTS["unicode_mixed"] += unicodedata.normalize(
    "NFD", "Vietnamese NFD: Tiếng Việt là ngôn ngữ chính thức của Việt Nam. Français: À bientôt, "
    "garçon! Español: ¿Qué tal, señor? Ελληνικά: ἄνθρωπος. 한국어 자모 분해.\n")

TEXTS["whitespace_runs"] = (
    "one space\n"
    "two  spaces\n"
    "three   spaces\n"
    "tabs\tand\t\ttwo\t\t\tthree\n"
    "twenty-three" + " " * 23 + "x\n"
    "twenty-four" + " " * 24 + "x\n"
    "twenty-five" + " " * 25 + "x\n"
    "fifty" + " " * 50 + "x\n"
    "hundred" + " " * 100 + "x\n"
    "trailing spaces   \n"
    "trailing tab\t\n"
    "mixed \t \t  \t\n"
    "windows line\r\nendings\r\n\r\n"
    "old mac\rline\r"
    "vertical\x0btab and form\x0cfeed\n"
    "   leading spaces\n"
    "\n\n\n\n\n"
    "after five newlines\n"
    " \n  \n   \n"
    + "\n" * 40 +
    "after forty newlines"
    + " " * 7
)

TEXTS["special_tokens"] = (
    "<|endoftext|>Document one starts right after the token.<|endoftext|>\n"
    "Between <|endoftext|> spaces and<|endoftext|>glued. <|padding|><|padding|><|endoftext|>\n"
    "Almost: <|endoftext| <endoftext|> <|ENDOFTEXT|> <|endoftext||> <<|endoftext|>>\n"
    "  <|endoftext|>  two spaces around  <|padding|>\n"
    "A combining mark after the token stays alone: <|endoftext|>\u0338 but here it composes: x>\u0338y\n"
    "<|padding|>"
)

TEXTS["digits_contractions"] = (
    "I don't know. I'll go. We've been. They're here. She'd say it's fine. I'm sure you'd agree.\n"
    "SHOUTING: DON'T, I'LL, IT'S, WE'VE. 'REALLY' \"quoted\" 'single' o'clock rock'n'roll.\n"
    "Curly: don’t, it’s ‘quoted’ “double”.\n"
    "Numbers: 0 7 42 123 2024 3.14159 -273.15 1e-9 6.022e23 1,000,000 10.000,50 0xDEADBEEF 0b1011\n"
    "Dates and times: 2024-01-15 15/01/2024 23:59:59.999 +1 (555) 010-9999 v1.2.3-rc.4\n"
    "Long number: 31415926535897932384626433832795028841971693993751058209749445923078164062862089986280\n"
    "Other digits: ١٢٣ ४५६ ５６７ ²³ ½ ⅓ Ⅻ 一二三\n"
    "Mixed: abc123def 123abc a1b2c3 x86_64 COVID-19 H2O mp3's 90's '90s\n"
)

TEXTS["long_word"] = (
    "supercalifragilisticexpialidocious" * 60
    + " "
    + "Pneumonoultramicroscopicsilicovolcanoconiosis" * 40
    + "\n"
    + "a" * 3000
    + " "
    + "9" * 1500
    + " "
    + "!" * 800
    + " "
    + "ab" * 1200
    + "\n"
    + "東京" * 300
    + "\n"
)

TEXTS["markup"] = (
    "# Title\n\n"
    "Some **bold**, _italic_ and `code`; a [link](https://example.com/a_b-c?x=1&y=2).\n\n"
    "- item one\n  - nested item\n    - deeper\n\n"
    "```json\n"
    "{\n  \"name\": \"statescope\",\n  \"version\": [0, 1, 0],\n  \"nested\": {\"ok\": true, \"pi\": 3.14}\n}\n"
    "```\n\n"
    "<div class=\"x\"><p>HTML &amp; entities &lt;tag&gt; &#x1F917;</p></div>\n"
    "| col a | col b |\n|------:|:-----:|\n|  1    |  2    |\n"
    "#hashtag @mention ~tilde~ ^caret^ \\backslash\\ /path/to/file.txt C:\\Windows\\System32\n"
    "======  ------  ******  ......  ,,,,,,  ;;;;;;  ::::::\n"
)

TEXTS["control_chars"] = (
    "nul\x00byte, bell\x07, escape\x1b[0m, delete\x7f, "
    "C1\u0080\u009f, newline\n, "
    "lone combining at start follows:\n\u0301\u0302 then text\n"
    "surrogate-range neighbours \ud7ff \ue000 \uffff \U0010ffff\n"
)

TEXTS["empty"] = ""


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in TEXTS.items():
        (OUT / f"{name}.txt").write_bytes(text.encode("utf-8"))
        print(f"{name}.txt: {len(text.encode('utf-8'))} bytes")


if __name__ == "__main__":
    main()
