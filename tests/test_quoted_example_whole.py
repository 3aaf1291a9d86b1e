"""#24: a usage error wrapped on a terminal broke the quoted example
'2026-11-28 10:00[:00]' at its space (`--since`'s forms): a value a person
types, quotes and all, stays on one line as a `code span` does
(_base.whole_spans); an apostrophe in a word (a host's) opens no span."""
import pytest

from fabops.logs import SINCE_FORMS
from fabops.tasks._base import wrap


@pytest.mark.parametrize("columns", range(40, 81))
def test_a_quoted_example_is_never_split(columns):
    text = f"fabops: --since 'next tuesday' is not a time; give e.g. {SINCE_FORMS}"
    lines = wrap(text, columns).split("\n")
    for example in ("'2026-11-28 10:00[:00]'", "'1 hour ago'", "'2h 15m ago'", "'next tuesday'"):
        assert any(example in line for line in lines), (example, lines)
    assert all(len(line) <= columns for line in lines), lines


def test_an_apostrophe_in_a_word_opens_no_span():
    text = "the host's service and the hosts' files break at any space of this line as before"
    assert wrap(text, 30).split("\n") == ["the host's service and the", "hosts' files break at any", "space of this line as before"]
