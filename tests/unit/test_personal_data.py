"""Personal data found column by column with validators (checksums, numbering plans), never
on a plain number column; log policies parsed strictly; masking and keyed hashing leave
nothing of a value but what they promise."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pytest
from stdnum import iban, luhn

from loopline.core.errors import InvalidInput
from loopline.core.personal_data import MASK, LogPolicy, check_hash_key, keyed_hash
from loopline.core.traffic import TrafficPolicy
from loopline.predictions.log import LogRedaction
from loopline.profiling.pii import detect_table, detect_values, name_hint
from loopline.profiling.redaction import hash_column, mask_column
from tests.conftest import seeded_random

KEY = b"k" * 32
CARD_PREFIXES = ("4", "51", "55", "2221", "34", "37", "6011", "65", "3530", "62")


def _card(rng: random.Random, prefix: str) -> str:
    length = 15 if prefix in ("34", "37") else 16
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    return body + luhn.calc_check_digit(body)


def _broken(card: str) -> str:
    """The card number with its check digit wrong."""
    return card[:-1] + str((int(card[-1]) + 1) % 10)


def _phone(rng: random.Random) -> str:
    """A valid number, written as people write them: international or US national form."""
    while True:
        country, form = rng.choice([("US", "national"), ("US", "e164"), ("GB", "intl"), ("DE", "intl")])
        example = phonenumbers.example_number(country)
        digits = str(example.national_number)
        number = phonenumbers.parse(f"+{example.country_code}{digits[:-4]}{rng.randrange(10_000):04d}", None)
        if phonenumbers.is_valid_number(number):
            style = {
                "national": phonenumbers.PhoneNumberFormat.NATIONAL,
                "e164": phonenumbers.PhoneNumberFormat.E164,
                "intl": phonenumbers.PhoneNumberFormat.INTERNATIONAL,
            }[form]
            return phonenumbers.format_number(number, style)


def _iban(rng: random.Random) -> str:
    country, length = rng.choice([("DE", 18), ("NL", 0), ("FR", 23)])
    if country == "NL":
        bban = "ABNA" + "".join(rng.choice("0123456789") for _ in range(10))
    else:
        bban = "".join(rng.choice("0123456789") for _ in range(length))
    number = f"{country}00{bban}"
    return f"{country}{iban.calc_check_digits(number)}{bban}"


def seeded_people(rows: int = 3000) -> pd.DataFrame:
    """A table seeded with personal data of every kind, and columns that hold none."""
    rng = seeded_random()
    cards = [_card(rng, rng.choice(CARD_PREFIXES)) for _ in range(rows)]
    return pd.DataFrame(
        {
            "customer_id": np.arange(1, rows + 1),
            "account_number": [rng.randrange(10**17, 10**19) for _ in range(rows)],
            "email": [
                f"{rng.choice(['ann', 'bo', 'cy'])}.{i}@{rng.choice(['example.com', 'mail.de'])}"
                for i in range(rows)
            ],
            "phone": [_phone(rng) for _ in range(rows)],
            "card": cards,
            "card_spaced": [" ".join(c[i : i + 4] for i in range(0, len(c), 4)) for c in cards],
            "card_bad_luhn": [_broken(c) for c in cards],
            "card_as_integer": [int(c) for c in cards],
            "iban": [_iban(rng) for _ in range(rows)],
            "ip": [
                f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"
                if i % 3
                else f"2001:db8::{rng.randrange(65536):x}"
                for i in range(rows)
            ],
            "amount": [rng.gauss(50, 10) for _ in range(rows)],
            "plan": [rng.choice(["basic", "plus", "pro"]) for _ in range(rows)],
            "zip_code": [f"{rng.randrange(100000):05d}" for _ in range(rows)],
            "note": [rng.choice(["call back", "no answer", "paid 4111", ""]) for _ in range(rows)],
            "surname": [rng.choice(["Smith", "Okafor", "Larsen"]) for _ in range(rows)],
        }
    )


def test_a_seeded_table_is_flagged_column_by_column_and_its_plain_columns_are_not() -> None:
    frame = seeded_people()
    frame.loc[frame.index[::7], "email"] = None  # nulls are not values: they do not count against
    found = {name: kind.kind for name, kind in detect_table(pa.Table.from_pandas(frame)).items()}
    assert found == {
        "email": "email",
        "phone": "phone",
        "card": "payment_card",
        "card_spaced": "payment_card",
        "card_as_integer": "payment_card",
        "iban": "iban",
        "ip": "ip_address",
        "surname": "person_name",
    }
    flagged = detect_table(pa.Table.from_pandas(frame))
    assert flagged["email"].sampled == 1000 and flagged["email"].matched == 1000
    assert flagged["surname"].by == "column name"


def test_invalid_luhn_numbers_are_no_cards_and_plain_integers_are_no_ids() -> None:
    rng = seeded_random()
    cards = [_card(rng, "4") for _ in range(500)]
    assert detect_values(cards) is not None
    assert detect_values([_broken(c) for c in cards]) is None
    assert detect_values(list(range(1, 5001)), integers=True) is None
    assert detect_values([rng.randrange(10**15, 10**19) for _ in range(2000)], integers=True) is None
    assert detect_values([rng.randrange(10**8, 10**9) for _ in range(2000)], integers=True) is None
    assert detect_values([f"{i:010d}" for i in range(1000)]) is None  # ids written as text


def test_national_ids_are_recognised_by_their_checksums() -> None:
    from stdnum.es import dni
    from stdnum.nl import bsn

    rng = seeded_random()
    numbers = [f"{rng.randrange(10**7, 10**8)}" for _ in range(300)]
    dnis = [n + dni.calc_check_digit(n) for n in numbers]
    found = detect_values(dnis)
    assert found is not None and (found.kind, found.scheme) == ("national_id", "es.dni")
    bsns = [n for n in (f"{rng.randrange(10**8, 10**9)}" for _ in range(5000)) if bsn.is_valid(n)][:300]
    found = detect_values(bsns)
    assert found is not None and found.scheme == "nl.bsn"
    ssns = [
        f"{rng.randrange(100, 666)}-{rng.randrange(1, 99):02d}-{rng.randrange(1, 9999):04d}"
        for _ in range(300)
    ]
    found = detect_values(ssns)
    assert found is not None and found.scheme == "us.ssn"
    assert detect_values([s.replace("-", "") for s in ssns]) is None  # bare nine digits: any id


def test_a_mostly_valid_column_is_flagged_and_a_mixed_one_is_not() -> None:
    emails = [f"user{i}@example.com" for i in range(90)]
    assert detect_values(emails + ["n/a"] * 10) is not None  # 90 %: still a column of emails
    assert detect_values(emails[:50] + ["n/a"] * 50) is None  # half: no clear majority


def test_names_are_hinted_by_the_column_name_only() -> None:
    for column in ("first_name", "LastName", "customer_full_name", "surname"):
        assert name_hint(column) is not None, column
    for column in ("name", "product_name", "filename", "hostname"):
        assert name_hint(column) is None, column


def test_masking_leaves_nothing_and_keyed_hashes_are_no_plain_digests() -> None:
    text = pa.array(["a@example.com", None, "b@example.com"])
    assert mask_column(text).to_pylist() == [MASK, None, MASK]
    assert mask_column(pa.array([1.5, None, 3.0])).to_pylist() == [None, None, None]
    hashed = hash_column(text, KEY, "email").to_pylist()
    assert hashed[1] is None and hashed[0] != hashed[2]
    assert hashed[0] == keyed_hash(KEY, "a@example.com") != hashlib.sha256(b"a@example.com").hexdigest()
    assert keyed_hash(b"o" * 32, "a@example.com") != hashed[0]  # another key, another pseudonym
    assert keyed_hash(KEY, 7) == keyed_hash(KEY, 7.0) == keyed_hash(KEY, np.int64(7))
    with pytest.raises(InvalidInput, match="LOOPLINE_PII_HASH_KEY"):
        hash_column(text, None, "email")
    with pytest.raises(InvalidInput, match="at least 32"):
        check_hash_key("short")


def test_a_log_policy_treats_inputs_and_their_entity_columns_alike() -> None:
    table = pa.table(
        {
            "request_id": ["r1", "r2"],
            "input.email": ["a@example.com", "b@example.com"],
            "entity.email": ["a@example.com", "b@example.com"],
            "input.phone": ["+1 201-555-0123", None],
            "input.card": ["4111111111111111", "4111111111111111"],
            "input.age": [30, 40],
        }
    )
    policy = LogPolicy(drop=("card",), mask=("phone",), hash=("email",))
    out = LogRedaction(policy, KEY).apply(table)
    assert "input.card" not in out.column_names
    assert out.column("input.phone").to_pylist() == [MASK, None]
    assert out.column("input.email").to_pylist() == out.column("entity.email").to_pylist()
    assert out.column("input.email").to_pylist()[0] == keyed_hash(KEY, "a@example.com")
    assert out.column("input.age").to_pylist() == [30, 40]
    with pytest.raises(InvalidInput, match="hash key"):
        LogRedaction(policy, None)


def test_log_policies_are_parsed_strictly_and_travel_with_the_traffic_policy() -> None:
    policy = TrafficPolicy.single("models:/churn/1").with_log(LogPolicy(mask=("phone",), hash=("email",)))
    stored = policy.to_dict()
    assert stored["log"] == {"mask": ["phone"], "hash": ["email"]}
    assert TrafficPolicy.from_dict(stored) == policy
    assert "log masks phone; hashes email" in policy.describe()
    with pytest.raises(InvalidInput, match="both masked and hashed"):
        LogPolicy(mask=("email",), hash=("email",))
    with pytest.raises(InvalidInput, match="must be"):
        TrafficPolicy.from_dict({**stored, "log": {"encrypt": ["email"]}})
    with pytest.raises(InvalidInput, match="list of names"):
        LogPolicy.from_dict({"drop": "email"})
    assert not LogPolicy() and TrafficPolicy.from_dict({**stored, "log": {}}).log_treatments is None
