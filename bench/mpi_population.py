#!/usr/bin/env python3
"""A synthetic Japanese patient population for measuring patient matching (名寄せ).

usage: mpi_population.py RECORDS OUT.tsv [SEED]

Writes one line per facility-local patient record, tab-separated, with a header:
  facility  patient_id  person  name  birth_date  sex
`name` is a DICOM Patient's Name (alphabetic=ideographic=phonetic, each family^given);
`person` is the truth: records of one person share it. Nothing here is a real person.

Names: surname and given-name pairs (kanji, kana) from gimei's list (500 surnames, about
13,000 given names), and from Faker ja_JP's `*_pair()` methods (kanji, kana, romaji), never
`name()` (its kanji and kana are independent draws). Both come from PyPI at run time.

Each person has one to ten records across 30 facilities. Each facility has its own habits
(legacy half-width kana, small kana enlarged, long vowels as ー, romaji without kana), and
every record may carry the errors real registrations do: 異体字 (髙/高, 﨑/崎, 邊/辺), a
homophone kanji, a 外字 in the private-use area, missing kanji, kana typos, family and
given swapped, era-swapped, mistyped or day/month-swapped birth dates, a wrong or missing
sex, and a new surname after marriage. Hard negatives are injected on purpose: twins
(same surname and birth date), and strangers with the same name and birth date.
"""

import bisect
import csv
import importlib.util
import itertools
import os
import random
import sys

import yaml
from faker import Faker

records_wanted = int(sys.argv[1])
out_path = sys.argv[2]
seed = int(sys.argv[3]) if len(sys.argv) > 3 else 20261121
rng = random.Random(seed)
Faker.seed(seed)
faker = Faker("ja_JP")
FACILITIES = 30

# --- names -------------------------------------------------------------------------------

gimei_spec = importlib.util.find_spec("gimei")
with open(os.path.join(os.path.dirname(gimei_spec.origin), "data", "names.yml"), encoding="utf-8") as f:
    gimei = yaml.safe_load(f)
surnames = [(k, kata) for k, _, kata in gimei["last_name"]]
given = {"M": [(k, kata) for k, _, kata in gimei["first_name"]["male"]],
         "F": [(k, kata) for k, _, kata in gimei["first_name"]["female"]]}
rng.shuffle(surnames)
for names in given.values():
    rng.shuffle(names)


def zipf_picker(items, offset):
    """Draws items with weight 1/(rank + offset): a few names are common, most are rare."""
    cumulative = list(itertools.accumulate(1.0 / (rank + offset) for rank in range(1, len(items) + 1)))
    return lambda: items[bisect.bisect(cumulative, rng.random() * cumulative[-1])]


pick_surname = zipf_picker(surnames, 10)
pick_given = {sex: zipf_picker(names, 50) for sex, names in given.items()}


def faker_names(sex):
    last = faker.last_name_pair()
    first = faker.first_name_male_pair() if sex == "M" else faker.first_name_female_pair()
    return (last[0], last[1]), (first[0], first[1])


BASE = {"ア": "a", "イ": "i", "ウ": "u", "エ": "e", "オ": "o", "カ": "ka", "キ": "ki", "ク": "ku", "ケ": "ke", "コ": "ko",
        "サ": "sa", "シ": "shi", "ス": "su", "セ": "se", "ソ": "so", "タ": "ta", "チ": "chi", "ツ": "tsu", "テ": "te",
        "ト": "to", "ナ": "na", "ニ": "ni", "ヌ": "nu", "ネ": "ne", "ノ": "no", "ハ": "ha", "ヒ": "hi", "フ": "fu",
        "ヘ": "he", "ホ": "ho", "マ": "ma", "ミ": "mi", "ム": "mu", "メ": "me", "モ": "mo", "ヤ": "ya", "ユ": "yu",
        "ヨ": "yo", "ラ": "ra", "リ": "ri", "ル": "ru", "レ": "re", "ロ": "ro", "ワ": "wa", "ヲ": "o", "ン": "n",
        "ガ": "ga", "ギ": "gi", "グ": "gu", "ゲ": "ge", "ゴ": "go", "ザ": "za", "ジ": "ji", "ズ": "zu", "ゼ": "ze",
        "ゾ": "zo", "ダ": "da", "ヂ": "ji", "ヅ": "zu", "デ": "de", "ド": "do", "バ": "ba", "ビ": "bi", "ブ": "bu",
        "ベ": "be", "ボ": "bo", "パ": "pa", "ピ": "pi", "プ": "pu", "ペ": "pe", "ポ": "po", "ヴ": "vu", "ー": ""}
SMALL = {"ャ": "ya", "ュ": "yu", "ョ": "yo"}


def romaji(kana, long_o="ou"):
    """Hepburn, with the long O written as `long_o` (ou, o or oh, as facilities do)."""
    out = ""
    i = 0
    while i < len(kana):
        c = kana[i]
        if c == "ッ":
            nxt = BASE.get(kana[i + 1], "") if i + 1 < len(kana) else ""
            out += nxt[:1]
        elif c in SMALL and out:
            stem = out[:-1] if out.endswith("i") else out
            if stem.endswith(("sh", "ch", "j")):
                out = stem + SMALL[c][1:]
            else:
                out = stem + SMALL[c]
        elif c in "ァィゥェォ" and out:
            out = out[:-1] + {"ァ": "a", "ィ": "i", "ゥ": "u", "ェ": "e", "ォ": "o"}[c]
        else:
            out += BASE.get(c, "")
        i += 1
    if long_o != "ou":
        out = out.replace("ou", long_o).replace("oo", long_o)
    return out.capitalize()


# --- corruptions -------------------------------------------------------------------------

def load_variants():
    table = os.path.join(os.path.dirname(__file__), "..", "crates", "matching", "data", "kanji-variants.txt")
    pairs = {}
    for line in open(table, encoding="utf-8"):
        if line.startswith("#") or not line.strip():
            continue
        chars = line.split()
        for c in chars:
            pairs[c] = [o for o in chars if o != c]
    return pairs


VARIANTS = load_variants()
HOMOPHONES = {}
for kanji, kata in surnames:
    HOMOPHONES.setdefault(kata, []).append(kanji)
HALF = dict(zip("アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワヲンァィゥェォャュョッー",
                "ｱｲｳｴｵｶｷｸｹｺｻｼｽｾｿﾀﾁﾂﾃﾄﾅﾆﾇﾈﾉﾊﾋﾌﾍﾎﾏﾐﾑﾒﾓﾔﾕﾖﾗﾘﾙﾚﾛﾜｦﾝｧｨｩｪｫｬｭｮｯｰ"))
VOICED = dict(zip("ガギグゲゴザジズゼゾダヂヅデドバビブベボ", "カキクケコサシスセソタチツテトハヒフヘホ"))
SEMI = dict(zip("パピプペポ", "ハヒフヘホ"))
ROWS = ["アイウエオ", "カキクケコ", "サシスセソ", "タチツテト", "ナニヌネノ", "ハヒフヘホ", "マミムメモ", "ヤユヨ", "ラリルレロ",
        "ガギグゲゴ", "ザジズゼゾ", "ダヂヅデド", "バビブベボ", "パピプペポ"]


def half_width(kana):
    out = ""
    for c in kana:
        if c in VOICED:
            out += HALF[VOICED[c]] + "ﾞ"
        elif c in SEMI:
            out += HALF[SEMI[c]] + "ﾟ"
        else:
            out += HALF.get(c, c)
    return out


def enlarge_small(kana):
    return kana.translate(str.maketrans("ァィゥェォャュョッ", "アイウエオヤユヨツ"))


def long_vowel_bar(kana):
    """オウ → オー and the like, as some registration systems write long vowels."""
    out = ""
    for i, c in enumerate(kana):
        prev = out[-1] if out else ""
        if c == "ウ" and prev and any(prev in row for row in ("オコソトノホモヨロゴゾドボポ", "ウクスツヌフムユルグズブプ")):
            out += "ー"
        else:
            out += c
    return out


def kana_typo(kana):
    if len(kana) < 2:
        return kana
    i = rng.randrange(len(kana))
    c = kana[i]
    kind = rng.random()
    if kind < 0.4:  # a neighbour in the same 50音 row
        for row in ROWS:
            if c in row and len(row) > 1:
                return kana[:i] + rng.choice([x for x in row if x != c]) + kana[i + 1:]
    if kind < 0.6 and c in VOICED:  # a dropped voicing mark
        return kana[:i] + VOICED[c] + kana[i + 1:]
    if kind < 0.8 and i + 1 < len(kana):  # two kana transposed
        return kana[:i] + kana[i + 1] + c + kana[i + 2:]
    return kana[:i] + kana[i + 1:]  # a kana dropped


def variant_kanji(kanji):
    spots = [i for i, c in enumerate(kanji) if c in VARIANTS]
    if not spots:
        return None
    i = rng.choice(spots)
    return kanji[:i] + rng.choice(VARIANTS[kanji[i]]) + kanji[i + 1:]


# Era start years, and the eras a date is mistakenly written in: the neighbouring ones.
ERAS = [1868, 1912, 1926, 1989, 2019]


def era_swap(date):
    """The same era year, month and day written in a neighbouring era (昭和 as 平成, …)."""
    year = int(date[:4])
    era = max(i for i, start in enumerate(ERAS) if start <= year)
    other = rng.choice([i for i in (era - 1, era + 1) if 0 <= i < len(ERAS)])
    return f"{ERAS[other] + year - ERAS[era]:04d}{date[4:]}"


def date_typo(date):
    kind = rng.random()
    if kind < 0.4:
        i = rng.randrange(2, 8)
        digit = str((int(date[i]) + rng.choice([1, -1])) % 10)
        typo = date[:i] + digit + date[i + 1:]
    elif kind < 0.7:
        i = rng.randrange(4, 7)
        typo = date[:i] + date[i + 1] + date[i] + date[i + 2:]
    else:
        typo = date[:4] + date[6:8] + date[4:6]
    month, day = int(typo[4:6]), int(typo[6:8])
    return typo if 1 <= month <= 12 and 1 <= day <= 28 else date


# --- people ------------------------------------------------------------------------------

class Person:
    def __init__(self, number, sex=None, birth=None, family=None, given_name=None):
        self.id = number
        self.sex = sex or rng.choice("MF")
        if birth is None:
            year = 2025 - min(int(abs(rng.gauss(0, 1)) * 30 + rng.random() * 20), 100)
            birth = f"{year:04d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        self.birth = birth
        if family is None or given_name is None:
            if rng.random() < 0.3:
                fam, giv = faker_names(self.sex)
            else:
                fam, giv = pick_surname(), pick_given[self.sex]()
            family = family or fam
            given_name = given_name or giv
        self.family, self.given = family, given_name
        self.married_family = None
        if self.sex == "F" and 1980 <= int(self.birth[:4]) <= 2005 and rng.random() < 0.25:
            self.married_family = pick_surname()


def record_count():
    return rng.choices(range(1, 11), weights=[45, 25, 12, 7, 4, 2.5, 1.5, 1.2, 1, 0.8])[0]


profiles = []
for facility in range(FACILITIES):
    profiles.append({
        "half_width": rng.random() < 0.15,
        "enlarge_small": rng.random() < 0.2,
        "long_bar": rng.random() < 0.15,
        "romaji_only": rng.random() < 0.07,
        "long_o": rng.choice(["ou", "ou", "o", "oh"]),
        "typo": rng.uniform(0.005, 0.03),
    })


def render(person, facility):
    """One facility's record of a person, with that facility's habits and errors."""
    profile = profiles[facility]
    (family_kanji, family_kana), (given_kanji, given_kana) = person.family, person.given
    if person.married_family and rng.random() < 0.5:
        family_kanji, family_kana = person.married_family
    if rng.random() < 0.04:
        family_kanji = variant_kanji(family_kanji) or family_kanji
    if rng.random() < 0.02:
        given_kanji = variant_kanji(given_kanji) or given_kanji
    homophones = sorted(set(HOMOPHONES.get(family_kana, [])) - {family_kanji})
    if rng.random() < 0.01 and homophones:
        family_kanji = rng.choice(homophones)
    if rng.random() < 0.01:
        family_kanji = "\ue000" + family_kanji[1:]
    if rng.random() < 0.03:
        family_kanji = given_kanji = ""
    if rng.random() < profile["typo"]:
        family_kana = kana_typo(family_kana)
    if rng.random() < profile["typo"]:
        given_kana = kana_typo(given_kana)
    alphabetic = f"{romaji(family_kana, profile['long_o'])}^{romaji(given_kana, profile['long_o'])}"
    for fix, applies in ((long_vowel_bar, profile["long_bar"]), (enlarge_small, profile["enlarge_small"]),
                         (half_width, profile["half_width"])):
        if applies:
            family_kana, given_kana = fix(family_kana), fix(given_kana)
    ideographic = f"{family_kanji}^{given_kanji}" if family_kanji else ""
    phonetic = "" if profile["romaji_only"] else f"{family_kana}^{given_kana}"
    if rng.random() < 0.003:
        ideographic = f"{given_kanji}^{family_kanji}" if ideographic else ""
        phonetic = f"{given_kana}^{family_kana}" if phonetic else ""
    name = f"{alphabetic}={ideographic}={phonetic}"

    birth = person.birth
    roll = rng.random()
    if roll < 0.004:
        birth = era_swap(birth)
    elif roll < 0.016:
        birth = date_typo(birth)
    elif roll < 0.021:
        birth = ""
    sex = person.sex
    roll = rng.random()
    if roll < 0.003:
        sex = "M" if sex == "F" else "F"
    elif roll < 0.008:
        sex = ""
    return name, birth, sex


people = []
total = 0


def add(person):
    global total
    person.records = record_count()
    people.append(person)
    total += person.records
    return person


while total < records_wanted:
    person = add(Person(len(people)))
    roll = rng.random()
    if roll < 0.01:  # a twin: same surname and birth date, another given name
        twin_sex = person.sex if rng.random() < 0.5 else rng.choice("MF")
        add(Person(len(people), twin_sex, person.birth, person.family, pick_given[twin_sex]()))
    elif roll < 0.0115:  # a stranger with the same name and birth date
        add(Person(len(people), person.sex, person.birth, person.family, person.given))

rows = []
serials = [0] * FACILITIES
for person in people:
    for facility in rng.sample(range(FACILITIES), person.records):
        serials[facility] += 1
        name, birth, sex = render(person, facility)
        rows.append((f"f{facility + 1:02d}", f"{facility + 1:02d}-{serials[facility]:07d}", person.id, name, birth, sex))
rows.sort(key=lambda r: (r[0], r[1]))

with open(out_path, "w", encoding="utf-8", newline="") as out:
    writer = csv.writer(out, delimiter="\t", lineterminator="\n")
    writer.writerow(["facility", "patient_id", "person", "name", "birth_date", "sex"])
    writer.writerows(rows)
print(f"{len(rows)} records of {len(people)} people across {FACILITIES} facilities", file=sys.stderr)
