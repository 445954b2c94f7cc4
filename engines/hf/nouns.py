"""The object's name from a class-label extractor's answer: a small deterministic rule, no language model.

The paper takes "the noun" of the CLE's description. Answers to "Name the object in the image?" are short: "The
object in the image is a potato.", "A red apple", "Bolts". Rule: lower-case words; drop function words and the
words of the question itself (object, image, ...); the first run of remaining words is the noun phrase, and its
last word is the noun (an English noun phrase ends with its head: "red apple" -> "apple"). A participle after the
first word ("lying", "placed") ends the phrase too: "a hex nut lying on a table" -> "nut". The rule is the same
for every answer, so one answer always gives the same label.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*")

# Words that are never the object's name: articles, pronouns, auxiliaries, prepositions, numbers, and the words of
# the prompt and of the usual answer frame ("The object in the image is ...", "This picture shows ...").
_NOT_NOUNS = frozenset(
    """
    a an the this that these those it its there here they them their some any each every all both
    is are was were be been being am do does did has have had can could may might will would shall should
    of in on at to from by with for as into onto over under above below near next beside between about
    and or but nor so yet not no
    i you he she we me my your our his her
    what which who whom whose name named called object objects item items thing things image images picture
    pictures photo photos photograph shown shows show showing seen see looks look like appears appear
    one two three four five six seven eight nine ten several many few single pile group bunch lot lots
    assistant human user answer
    """.split()
)
# Participles that follow a noun in descriptions ("-ing" forms are recognised by their ending).
_PARTICIPLES = frozenset("placed made shaped coloured colored located isolated arranged cut masked held".split())


def _ends_phrase(word: str) -> bool:
    return word in _PARTICIPLES or (len(word) >= 5 and word.endswith("ing"))


def noun_of(answer: str, max_chars: int = 64) -> str:
    """The object's name in a CLE answer (lower case), or "" when the answer names nothing.

    Only the first sentence counts; a word longer than `max_chars` is no name."""
    first = re.split(r"[.!?\n]", answer.lower(), maxsplit=1)[0]
    phrase: list[str] = []
    for word in _WORD.findall(first):
        if word in _NOT_NOUNS or len(word) > max_chars or (phrase and _ends_phrase(word)):
            if phrase:
                break
            continue
        phrase.append(word)
    return phrase[-1] if phrase else ""
