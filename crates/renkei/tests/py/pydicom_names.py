"""Names encoded and decoded by pydicom, for cross-checking Renkei's character-set layer.

usage: pydicom_names.py COUNT
Prints TAB-separated lines: Specific Character Set, the name, the PN bytes pydicom encodes it
to (hex), and the name as pydicom decodes those bytes. Names are drawn at random (fixed seed) from
alphabets each character set can represent.
"""
import random
import sys
import warnings

warnings.simplefilter("ignore")
from pydicom.charset import decode_bytes, encode_string, convert_encodings
from pydicom.valuerep import PersonName

KANJI = "山田太郎花子佐藤鈴木高橋田中渡辺伊藤中村小林加藤吉田山本斎藤齋藤髙橋邊辺窪久保松井井上木村林清水"
HIRAGANA = "".join(chr(c) for c in range(ord("ぁ"), ord("ん") + 1))
KATAKANA = "".join(chr(c) for c in range(ord("ァ"), ord("ヶ") + 1)) + "ー"
HALFWIDTH = "".join(chr(c) for c in range(ord("ｦ"), ord("ﾟ") + 1))
ROMAJI = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SETS = [
    ("\\ISO 2022 IR 87", [ROMAJI, KANJI + HIRAGANA + KATAKANA, HIRAGANA + KATAKANA]),
    ("ISO 2022 IR 13\\ISO 2022 IR 87", [HALFWIDTH, KANJI + HIRAGANA + KATAKANA, HIRAGANA + KATAKANA]),
    ("ISO_IR 13", [HALFWIDTH + ROMAJI]),
    ("ISO_IR 192", [ROMAJI, KANJI + HIRAGANA + KATAKANA, HIRAGANA + KATAKANA + HALFWIDTH]),
    ("ISO_IR 100", [ROMAJI + "äöüéèçñß"]),
]

count = int(sys.argv[1])
rng = random.Random(20261121)
for charset, groups in SETS:
    encodings = convert_encodings(charset.split("\\"))
    for _ in range(count):
        parts = []
        for alphabet in groups[: rng.randint(1, len(groups))]:
            components = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 5))) for _ in range(rng.randint(1, 2))]
            parts.append("^".join(components))
        name = "=".join(parts)
        encoded = PersonName(name).encode(encodings)
        decoded = str(PersonName(encoded, encodings))
        print(f"{charset}\t{name}\t{encoded.hex()}\t{decoded}")
