"""A deployment's prediction-log treatments, checked when they are set and applied where
a request could leave a value behind: its logged rows (`predictions.log.LogRedaction`) and
the message of a refused request, which may quote what the request sent."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from loopline.core.errors import InvalidInput
from loopline.core.personal_data import HASH_KEY_HINT, MASK, LogPolicy
from loopline.core.registry import ModelVersion
from loopline.models.signature import Signature

SHOWN = 20
TEXT_TYPES = ("string", "category")
MIN_SCRUBBED = 3  # shorter values (a 1, a "no") are not worth hiding and would garble messages


def _inputs(version: ModelVersion) -> dict[str, str] | None:
    """The input columns the version's signature lists, with their types; None when it lists none."""
    found = version.model_json.get("signature")
    if not found:
        return None
    inputs = Signature.from_dict(found).inputs
    return {c.name: c.type for c in inputs} if isinstance(inputs, tuple) and inputs else None


def check_log_policy(
    policy: LogPolicy, served: Mapping[str, ModelVersion], join_keys: Iterable[str], hash_key: bytes | None
) -> None:
    """Refuse treatments of columns no arm's model takes (when every arm's signature lists its
    inputs) and no online feature is looked up by, hashing without a key, and hashing an input
    a signature types as a number: its pseudonym is text, and the log's earlier files hold
    numbers in that column, which no reader could put in one column with text."""
    if policy.hash and hash_key is None:
        raise InvalidInput(f"the prediction log cannot hash {list(policy.hash)[:SHOWN]}: {HASH_KEY_HINT}")
    inputs = [_inputs(version) for version in served.values()]
    for types in inputs:
        numeric = [name for name in policy.hash if (types or {}).get(name, "string") not in TEXT_TYPES]
        if numeric:
            raise InvalidInput(
                f"the prediction log cannot hash {numeric[:SHOWN]}: the model takes "
                f"{'it' if len(numeric) == 1 else 'them'} as {types[numeric[0]] if types else 'numbers'}, "
                "and a pseudonym is text; mask or drop such a column instead"
            )
    if any(names is None for names in inputs):
        return  # a model without a column signature takes what it is given: nothing to check against
    known = {name for names in inputs if names for name in names} | set(join_keys)
    unknown = [name for name in policy.columns if name not in known]
    if unknown:
        takes = ", ".join(sorted(known)[:SHOWN]) + (", ..." if len(known) > SHOWN else "")
        raise InvalidInput(
            f"the prediction log's policy names columns {unknown[:SHOWN]} that no model of the "
            f"deployment takes ({', '.join(v.uri for v in served.values())} take {takes}); "
            "name input columns or join keys"
        )


def scrub(message: str, values: Iterable[object]) -> str:
    """`message` with every value of the treated columns replaced by `***`."""
    texts = {str(v) for v in values if v is not None}
    for text in sorted(texts, key=len, reverse=True):  # longest first: a value inside another
        if len(text) >= MIN_SCRUBBED:
            message = message.replace(text, MASK)
    return message
