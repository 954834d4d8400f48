"""Personal data in a table, column by column, from a bounded sample of each column's values.

A column is flagged with a kind when at least `MAJORITY` of its sampled non-null values
validate as that kind, with validators that check structure and checksums, never a bare
regular expression:

- email: `email-validator` (the syntax of RFC 5322 and its internationalised forms; no DNS
  lookup, so profiling never touches the network).
- phone: `phonenumbers` (Google's libphonenumber: per-country numbering plans). A number in
  international form (+44 20 ...) is read as written; one without a country code is read as
  a number of `default_region` (US by default). A bare string of digits is never taken for a
  phone number: it could be any identifier.
- payment_card: `python-stdnum`'s Luhn check, a length of 12 to 19 digits and an issuer prefix
  of a known network (Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay, Maestro).
- iban: `python-stdnum` (country format and the ISO 7064 mod-97 checksum).
- national_id: `python-stdnum` schemes with a check digit or a strict structure: US SSN
  (written AAA-GG-SSSS only: without a checksum, bare nine digits are too common), Dutch BSN,
  French NIR, Spanish DNI, Italian codice fiscale, Swedish personnummer, Finnish HETU, German
  IdNr.
- ip_address: the standard library's `ipaddress` (IPv4 and IPv6).
- person_name: no offline library recognises names in free text (NER models are downloaded
  from a model hub), so a text column is flagged only by its name (first_name, surname,
  full_name...), as a hint (`by: "column name"`).

Integer columns are tested only as card numbers and national ids, whose checksums a run of
ids fails nine times in ten; ids 1..N are too short for either. The sample is deterministic
(evenly spaced values from the first rows of at most `MAX_ROW_GROUPS` evenly spaced row
groups), so the cost of detection does not grow with the table.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

SAMPLE_SIZE = 1000
MAJORITY = 0.8  # share of sampled values that must validate
MAX_ROW_GROUPS = 8  # of a Parquet file, whose first rows are read for the sample
PROBE = 40  # values validated before the rest of a sample
DEFAULT_REGION = "US"

_NAME_HINT = re.compile(
    r"(^|_)((first|last|given|family|middle|full|maiden|person|customer|contact|display)_?name"
    r"|surname|forename|firstname|lastname|fullname)($|_)"
)


@dataclass(frozen=True)
class PersonalData:
    """What a column holds: its `kind`, found `by` its values (how many of how many sampled
    validated) or by its column name; `scheme` names a national id's scheme (e.g. nl.bsn)."""

    kind: str
    by: str = "values"
    matched: int = 0
    sampled: int = 0
    scheme: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """As a dataset version's column summary holds it, under `personal_data`."""
        found: dict[str, Any] = {"kind": self.kind, "by": self.by}
        if self.by == "values":
            found.update(matched=self.matched, sampled=self.sampled)
        if self.scheme is not None:
            found["scheme"] = self.scheme
        return found

    def describe(self) -> str:
        """`email (998 of 1000 sampled values)`, `person_name (by its column name)`."""
        what = self.kind + (f" {self.scheme}" if self.scheme else "")
        if self.by != "values":
            return f"{what} (by its column name)"
        return f"{what} ({self.matched:,} of {self.sampled:,} sampled values)"


# --- validators: each takes a stripped text value ------------------------------------------


def _email(value: str) -> bool:
    from email_validator import EmailNotValidError, validate_email

    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def _phone(region: str | None) -> Callable[[str], bool]:
    import phonenumbers

    def valid(value: str) -> bool:
        try:
            number = phonenumbers.parse(value, None if value.startswith("+") else region)
        except phonenumbers.NumberParseException:
            return False
        return bool(phonenumbers.is_valid_number(number))

    return valid


def _issuer_known(digits: str) -> bool:
    """Whether a card number's length fits the network its prefix (IIN) belongs to."""
    n, p2, p3, p4 = len(digits), int(digits[:2]), int(digits[:3]), int(digits[:4])
    if digits[0] == "4":
        return n in (13, 16, 19)  # Visa
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16  # Mastercard
    if p2 in (34, 37):
        return n == 15  # American Express
    if p4 == 6011 or 644 <= p3 <= 649 or p2 == 65:
        return 16 <= n <= 19  # Discover
    if 3528 <= p4 <= 3589:
        return 16 <= n <= 19  # JCB
    if 300 <= p3 <= 305 or p2 in (36, 38, 39):
        return 14 <= n <= 19  # Diners Club
    if p2 == 62:
        return 16 <= n <= 19  # UnionPay
    return p2 in (50, 56, 57, 58, 63, 67) and 12 <= n <= 19  # Maestro


def _card(value: str) -> bool:
    from stdnum import luhn

    digits = re.sub(r"[\s-]", "", value)
    return _issuer_known(digits) and bool(luhn.is_valid(digits))


def _iban(value: str) -> bool:
    from stdnum import iban

    return bool(iban.is_valid(value))


def _ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


_SSN = re.compile(r"\d{3}-\d{2}-\d{4}")


def _schemes() -> dict[str, Callable[[str], bool]]:
    """The national ids tried, each a validator with a checksum or a strict structure."""
    from stdnum.de import idnr
    from stdnum.es import dni
    from stdnum.fi import hetu
    from stdnum.fr import nir
    from stdnum.it import codicefiscale
    from stdnum.nl import bsn
    from stdnum.se import personnummer
    from stdnum.us import ssn

    return {
        "us.ssn": lambda v: bool(_SSN.fullmatch(v)) and bool(ssn.is_valid(v)),
        "nl.bsn": lambda v: bool(bsn.is_valid(v)),
        "fr.nir": lambda v: bool(nir.is_valid(v)),
        "es.dni": lambda v: bool(dni.is_valid(v)),
        "it.codicefiscale": lambda v: bool(codicefiscale.is_valid(v)),
        "se.personnummer": lambda v: bool(personnummer.is_valid(v)),
        "fi.hetu": lambda v: bool(hetu.is_valid(v)),
        "de.idnr": lambda v: bool(idnr.is_valid(v)),
    }


# --- detection -----------------------------------------------------------------------------


def _count(values: Sequence[str], valid: Callable[[str], bool], needed: int) -> int:
    """How many `values` validate, or a number below `needed` as soon as that is certain.
    A probe of evenly spaced values goes first: a kind most of them fail cannot reach the
    majority, and most (column, kind) pairs end there."""
    if len(values) > 2 * PROBE:
        probe = [values[i] for i in np.linspace(0, len(values) - 1, PROBE).astype(int)]
        if sum(map(valid, probe)) < PROBE // 2:
            return 0
    matched = failed = 0
    allowed = len(values) - needed  # more failures than this: the kind cannot win
    for value in values:
        if valid(value):
            matched += 1
        else:
            failed += 1
            if failed > allowed:
                return matched
    return matched


def _candidates(text: pd.Series) -> dict[str, pd.Series]:
    """Per kind, the values worth validating: cheap vectorised tests first."""
    digits = text.str.replace(r"[\s-]", "", regex=True)
    compact = text.str.replace(r"\s", "", regex=True)
    return {
        "email": text[text.str.contains("@", regex=False)],
        "phone": text[
            text.str.fullmatch(r"\+?[\d\s().-]{7,25}") & text.str.contains(r"[+\s().-]", regex=True)
        ],
        "payment_card": text[digits.str.fullmatch(r"\d{12,19}")],
        "iban": text[compact.str.fullmatch(r"[A-Za-z]{2}\d{2}[A-Za-z0-9]{11,30}")],
        "national_id": text[compact.str.fullmatch(r"[0-9A-Za-z.+-]{8,20}")],
        "ip_address": text[
            text.str.fullmatch(r"[0-9A-Fa-f:.]{2,45}") & text.str.contains(r"[.:]", regex=True)
        ],
    }


def detect_values(
    values: Iterable[Any], *, integers: bool = False, default_region: str | None = DEFAULT_REGION
) -> PersonalData | None:
    """The kind of personal data a clear majority of `values` (a sample) validate as, if any;
    `integers` says they are whole numbers, tested only as card numbers and national ids."""
    text = pd.Series([str(v).strip() for v in values if v is not None], dtype=object)
    text = text[text != ""]
    sampled = len(text)
    if not sampled:
        return None
    needed = max(1, int(np.ceil(MAJORITY * sampled)))
    candidates = _candidates(text)
    validators: dict[str, Callable[[str], bool]] = {
        "email": _email,
        "phone": _phone(default_region),
        "payment_card": _card,
        "iban": _iban,
        "ip_address": _ip,
    }
    tested = ("payment_card", "national_id") if integers else (*validators, "national_id")
    best: PersonalData | None = None
    for kind in tested:
        found = candidates[kind].tolist()
        if len(found) < needed:
            continue
        if kind == "national_id":
            for scheme, valid in _schemes().items():
                matched = _count(found, valid, needed)
                if matched >= needed and (best is None or matched > best.matched):
                    best = PersonalData(kind, "values", matched, sampled, scheme)
            continue
        matched = _count(found, validators[kind], needed)
        if matched >= needed and (best is None or matched > best.matched):
            best = PersonalData(kind, "values", matched, sampled)
    return best


def name_hint(column: str) -> PersonalData | None:
    """A person's name, by the column's name alone (first_name, surname, full_name...)."""
    normal = re.sub(r"[^a-z0-9]+", "_", re.sub(r"([a-z])([A-Z])", r"\1_\2", column).lower())
    return PersonalData("person_name", "column name") if _NAME_HINT.search(normal) else None


def _textual(data_type: pa.DataType) -> bool:
    if pa.types.is_dictionary(data_type):
        return _textual(data_type.value_type)
    return bool(pa.types.is_string(data_type) or pa.types.is_large_string(data_type))


def detectable(data_type: pa.DataType) -> bool:
    """Whether a column of this type is tested: text and integers."""
    return _textual(data_type) or pa.types.is_integer(data_type)


def sample_column(column: pa.Array | pa.ChunkedArray, size: int = SAMPLE_SIZE) -> list[Any]:
    """At most `size` non-null values, evenly spaced: the same column gives the same sample."""
    present = pc.drop_null(column)
    if len(present) > size:
        present = present.take(pa.array(np.linspace(0, len(present) - 1, size).astype(np.int64)))
    if pa.types.is_dictionary(present.type):
        present = present.cast(present.type.value_type)
    return list(present.to_pylist())


def detect_column(
    name: str, column: pa.Array | pa.ChunkedArray, default_region: str | None = DEFAULT_REGION
) -> PersonalData | None:
    """The personal data a column holds: by its values, else (for text) by its name."""
    if not detectable(column.type):
        return None
    integers = pa.types.is_integer(column.type)
    found = detect_values(sample_column(column), integers=integers, default_region=default_region)
    if found is None and not integers:
        found = name_hint(name)
    return found


def detect_table(table: pa.Table, default_region: str | None = DEFAULT_REGION) -> dict[str, PersonalData]:
    """The flagged columns of an Arrow table (a frame: `pa.Table.from_pandas`), by name."""
    flagged = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        found = detect_column(name, column, default_region)
        if found is not None:
            flagged[name] = found
    return flagged


def detect_parquet(path: Path, default_region: str | None = DEFAULT_REGION) -> dict[str, PersonalData]:
    """The flagged columns of a Parquet file, from the first rows of at most `MAX_ROW_GROUPS`
    evenly spaced row groups of its text and integer columns: the reader decodes only the
    pages it needs, so the cost does not grow with the file."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path, pre_buffer=False)
    names = [f.name for f in parquet.schema_arrow if detectable(f.type)]
    groups = parquet.num_row_groups
    if not names or not groups:
        return {}
    picked = sorted(set(np.linspace(0, groups - 1, min(groups, MAX_ROW_GROUPS)).astype(int).tolist()))
    rows = max(256, 2 * SAMPLE_SIZE // len(picked))
    batches = [
        next(parquet.iter_batches(batch_size=rows, row_groups=[group], columns=names), None)
        for group in picked
    ]
    schema = pa.schema([parquet.schema_arrow.field(name) for name in names])
    table = pa.Table.from_batches([b for b in batches if b is not None], schema)
    return detect_table(table, default_region)
