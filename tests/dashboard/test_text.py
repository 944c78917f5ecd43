"""Escaping for each renderer (``dashboard.components.text``): a value shows as exactly its text."""

from __future__ import annotations

import html
import re

import pytest

from dashboard.components.html import esc
from dashboard.components.text import WORD_JOINER, html_text, md, md_code

HOSTILE = [
    "[CLICK HERE TO LOG IN](http://evil)",
    "![x](http://evil/p.png)",
    "<http://evil.example>",
    "http://evil.example/a and www.evil.example and mail me@evil.example",
    "<img src=http://evil/q.png onerror=alert(1)>",
    "*em* _u_ **bold** `code` ~~gone~~ $x^2$",
    r"back\slash \[not a link\](x)",
    "line\n\n# Heading\n[ref]: http://evil/ref\n[ref]",
    ":red[red] :material/warning: :smile:",
    "| a | b |",
    "- item",
    "&amp; &lt;b&gt; &#x41;",
]


def _render(source: str) -> str:
    """CommonMark rendering (with GFM strikethrough and tables) of a Markdown source, as HTML."""
    markdown_it = pytest.importorskip("markdown_it")
    return markdown_it.MarkdownIt("commonmark").enable(["strikethrough", "table"]).render(source)


def test_md_escapes_every_ascii_punctuation_character() -> None:
    assert md("[CLICK HERE TO LOG IN](http://evil)") == (
        r"\[CLICK HERE TO LOG IN\]\(" + WORD_JOINER + r"http\:\/\/evil\)"
    )
    assert md("![x](p.png)") == r"\!\[x\]\(p\.png\)"
    assert md("*a* _b_ `c` <i> #d |e| ~f~ {g} $h$ :i:") == (
        r"\*a\* \_b\_ \`c\` \<i\> \#d \|e\| \~f\~ \{g\} \$h\$ \:i\:"
    )
    assert md("back\\slash") == "back\\\\slash"
    assert md("u0042 Ünïcödé 42") == "u0042 Ünïcödé 42"  # letters, digits, spaces pass through
    assert md(None) == "" and md(3.5) == r"3\.5"


def test_md_keeps_a_value_on_one_line() -> None:
    assert md("a\nb\r\nc\u2028d\te\x00f") == "a b  c d e f"


def test_md_stops_autolinks_with_an_invisible_word_joiner() -> None:
    j = WORD_JOINER
    assert md("see http://evil.example") == f"see {j}http\\:\\/\\/evil\\.example"
    assert md("WWW.evil.example") == f"{j}WWW\\.evil\\.example"
    assert md("me@evil.example") == f"me{j}\\@evil\\.example"
    assert md("mailto:me") == f"{j}mailto\\:me"


@pytest.mark.parametrize("value", HOSTILE)
def test_md_renders_as_the_literal_text(value: str) -> None:
    rendered = _render(md(value))
    assert re.findall(r"<(?!/?p>)[a-z]+", rendered) == []  # no element but the one paragraph
    text = html.unescape(re.sub(r"</?p>", "", rendered)).strip().replace(WORD_JOINER, "")
    assert text == re.sub(r"[\r\n\t]", " ", value)


@pytest.mark.parametrize("value", [*HOSTILE, "`", "``a`b``", " lead", "trail "])
def test_md_code_is_one_code_span_holding_the_text(value: str) -> None:
    rendered = _render(md_code(value)).strip()
    match = re.fullmatch(r"<p><code>(.*)</code></p>", rendered, flags=re.S)
    assert match is not None, rendered
    assert html.unescape(match.group(1)) == re.sub(r"[\r\n\t]", " ", value)


def test_md_code_of_nothing_is_an_empty_looking_span() -> None:
    assert md_code(None) == md_code("") == "` `"


def test_html_text_escapes_markup_and_quotes() -> None:
    assert html_text("<a href=\"x\">'t'</a>") == "&lt;a href=&quot;x&quot;&gt;&#x27;t&#x27;&lt;/a&gt;"
    assert html_text(None) == ""
    assert esc is html_text  # one HTML escaper: the fragments' short name is the same function
