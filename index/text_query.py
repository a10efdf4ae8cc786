"""What a text query may ask of the text index: which words, matched as prefixes or whole.

A prefix walks every indexed term that starts with it, and a one-letter prefix walks a good part
of the vocabulary: on 200k products ``"s"*`` took 146 ms and 32 one-letter prefixes 712 ms,
while ``"st"*`` took 7 ms and 32 one-letter whole words under 1 ms (a synthetic FTS5 table).
So a word shorter than ``MIN_PREFIX`` matches whole words only ("t shirt" still finds
"T-shirt"), repeated words count once, and a query has at most ``MAX_WORDS`` different words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_PREFIX = 2
MAX_WORDS = 16


class TextQueryError(ValueError):
    """A text query the service will not run (too many words)."""


@dataclass(frozen=True)
class TextWord:
    text: str  # lower-case ``\\w+``: nothing in it is query syntax
    prefix: bool  # also matches the words it begins


def text_words(query: str) -> list[TextWord]:
    """The words of ``query`` (``\\w+``, lower case, each once, in order); ``TextQueryError``
    when there are more than ``MAX_WORDS`` different ones."""
    words = list(dict.fromkeys(re.findall(r"\w+", query.lower())))
    if len(words) > MAX_WORDS:
        raise TextQueryError(
            f"a text query has at most {MAX_WORDS} different words, this one has {len(words)}"
        )
    return [TextWord(w, len(w) >= MIN_PREFIX) for w in words]
