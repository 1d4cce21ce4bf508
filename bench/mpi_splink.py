#!/usr/bin/env python3
"""The anchor for patient matching: Splink (DuckDB) on the same synthetic population, with the
same thresholds and the same quality measures as `renkei-testkit link`. Prints one JSON line.

usage: mpi_splink.py POPULATION.tsv [AUTO_LINK REVIEW]   (defaults 0.99 and 0.8, renkei's)

Splink gets what a careful user would give it without Japanese-specific tooling: family and
given names split from each component group, kana NFKC-normalized (half-width to full-width,
hiragana to katakana), the birth date and the sex. Each name part is one comparison over kana
and kanji together, as Splink's guidance on correlated columns asks (three separate name
comparisons, kana, kanji and romaji, gave it a precision of 0.35 here): both exact, kana exact
(with term frequencies), kanji exact, kana Jaro-Winkler ≥ 0.92 and ≥ 0.8, else. Then its own
date-of-birth comparison, and exact sex. Training follows its README: the prior from a
deterministic rule, u by random sampling, m by EM in two passes. Blocking: birth date, kana
name, kanji name (renkei's rules until it narrowed the name rules by birth year or month and
day; Splink's own cost is dominated by its SQL, not by those pairs).
"""

import json
import sys
import time
import unicodedata
from collections import Counter

import pandas as pd
import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on

path = sys.argv[1]
auto_link = float(sys.argv[2]) if len(sys.argv) > 2 else 0.99
review = float(sys.argv[3]) if len(sys.argv) > 3 else 0.8


def katakana(text):
    text = unicodedata.normalize("NFKC", text)
    return "".join(chr(ord(c) + 0x60) if "ぁ" <= c <= "ゖ" else c for c in text).replace(" ", "") or None


def parts(group):
    family, _, given = group.partition("^")
    return family or None, given or None


rows = []
with open(path, encoding="utf-8") as f:
    next(f)
    for number, line in enumerate(f):
        facility, patient_id, person, name, birth_date, sex = line.rstrip("\n").split("\t")
        alphabetic, ideographic, phonetic = (name.split("=") + ["", ""])[:3]
        family_kana, given_kana = parts(phonetic)
        family_kanji, given_kanji = parts(ideographic)
        rows.append({
            "unique_id": number, "person": int(person),
            "family_kana": family_kana and katakana(family_kana), "given_kana": given_kana and katakana(given_kana),
            "family_kanji": family_kanji, "given_kanji": given_kanji,
            "birth_date": f"{birth_date[:4]}-{birth_date[4:6]}-{birth_date[6:]}" if len(birth_date) == 8 else None,
            "sex": sex or None,
        })
df = pd.DataFrame(rows)



def name_part(part):
    kana, kanji = f"{part}_kana", f"{part}_kanji"
    return cl.CustomComparison(output_column_name=part, comparison_levels=[
        cll.And(cll.NullLevel(kana), cll.NullLevel(kanji)),
        cll.And(cll.ExactMatchLevel(kana), cll.ExactMatchLevel(kanji)),
        cll.ExactMatchLevel(kana, term_frequency_adjustments=True),
        cll.ExactMatchLevel(kanji),
        cll.JaroWinklerLevel(kana, 0.92),
        cll.JaroWinklerLevel(kana, 0.8),
        cll.ElseLevel(),
    ])


started = time.perf_counter()
db_api = DuckDBAPI()
records = db_api.register(df.drop(columns=["person"]), dataset_display_name="population")
settings = SettingsCreator(
    link_type="dedupe_only",
    comparisons=[
        name_part("family"),
        name_part("given"),
        cl.DateOfBirthComparison("birth_date", input_is_string=True),
        cl.ExactMatch("sex"),
    ],
    blocking_rules_to_generate_predictions=[
        block_on("birth_date"),
        block_on("family_kana", "given_kana"),
        block_on("family_kanji", "given_kanji"),
    ],
)
linker = Linker(records, settings, log_level="WARNING")
linker.training.estimate_probability_two_random_records_match(
    [block_on("family_kana", "given_kana", "birth_date")], recall=0.7)
linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=1)
linker.training.estimate_parameters_using_expectation_maximisation(block_on("birth_date"))
linker.training.estimate_parameters_using_expectation_maximisation(block_on("family_kana", "given_kana"))
predictions = linker.inference.predict(threshold_match_probability=review)
clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(predictions, auto_link)
pairs = predictions.as_pandas_dataframe()[["unique_id_l", "unique_id_r", "match_probability"]]
cluster_of = clusters.as_pandas_dataframe()[["unique_id", "cluster_id"]]
elapsed = time.perf_counter() - started

truth = df["person"].to_numpy()
true_pairs = sum(n * (n - 1) // 2 for n in Counter(truth).values())


def metrics(predicted, correct):
    precision = correct / predicted if predicted else 1.0
    recall = correct / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"predicted": int(predicted), "true_positives": int(correct), "precision": precision, "recall": recall, "f1": f1}


same = truth[pairs["unique_id_l"].to_numpy()] == truth[pairs["unique_id_r"].to_numpy()]
is_auto = pairs["match_probability"].to_numpy() >= auto_link
clustered = cluster_of.sort_values("unique_id")["cluster_id"].to_numpy()
cluster_pairs = sum(n * (n - 1) // 2 for n in Counter(clustered).values())
cluster_correct = sum(n * (n - 1) // 2 for n in Counter(zip(clustered, truth)).values())
review_pairs = int(len(pairs) - is_auto.sum())
# A review task is a pair of persons (auto-linked clusters) joined by review-band pairs.
cluster_by_id = dict(zip(cluster_of["unique_id"], cluster_of["cluster_id"]))
review_tasks = len({tuple(sorted((cluster_by_id[l], cluster_by_id[r])))
                    for l, r, auto in zip(pairs["unique_id_l"], pairs["unique_id_r"], is_auto)
                    if not auto and cluster_by_id[l] != cluster_by_id[r]})
print(json.dumps({
    "records": len(df), "seconds": round(elapsed, 2), "true_pairs": true_pairs,
    "pairs_auto": metrics(is_auto.sum(), (same & is_auto).sum()),
    "pairs_review": metrics(len(pairs), same.sum()),
    "clusters_auto": metrics(cluster_pairs, cluster_correct),
    "review_pairs": review_pairs, "review_tasks": review_tasks,
    "review_per_1000_records": review_tasks * 1000 / len(df),
}))
