"""Escaping for every renderer a data- or URL-derived string can reach: one module, one function per renderer.

Streamlit renders two languages. ``st.html`` takes HTML (:func:`html_text`). Everything else
that shows text (``st.markdown``, ``st.caption``, ``st.info`` / ``st.warning`` / ``st.error``,
headers, widget labels and help tooltips) takes GitHub-flavoured Markdown plus Streamlit's own
``:red[...]`` and ``:material/icon:`` syntax (:func:`md`; :func:`md_code` inside a code span).
HTML escaping is not Markdown escaping: ``[log in](http://evil)`` and ``![x](http://evil/p.png)``
contain no HTML metacharacter, yet Markdown turns them into a link and an image the browser
fetches. A user id from the address bar or a title from a data file goes through the function
of the renderer it reaches, so it shows as the literal text; only fixed text is trusted.
"""

from __future__ import annotations

import html
import re
import string
from typing import Any

WORD_JOINER = "\u2060"
_PUNCTUATION = frozenset(string.punctuation)
# C0/C1 controls and the Unicode line and paragraph separators: a line break inside a value would
# end the sentence's paragraph and start a new block (a heading, a list, a link definition).
_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# GitHub-flavoured Markdown links bare URLs, ``www.`` names and e-mail addresses after parsing, so
# backslash escapes do not stop it (``http\:\/\/evil\.com`` is still linked). A WORD JOINER (U+2060:
# invisible, neither whitespace nor punctuation) in front of each one fails the "starts a word" test
# that autolinking requires, and a joiner before ``@`` splits an address's local part from its domain.
_AUTOLINK = re.compile(r"(?i)(?=https?:|www\.|mailto:|xmpp:|@)")


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def html_text(value: Any) -> str:
    """Escape any value for HTML (quotes included), so ``st.html`` shows it as text."""
    return html.escape(_text(value), quote=True)


def md(value: Any) -> str:
    """Escape any value for Streamlit's Markdown, so it renders as exactly its text.

    Every ASCII punctuation character is backslash-escaped (CommonMark allows it for all of
    them), which disarms links, images, emphasis, code spans, raw HTML, headings, tables,
    strikethrough, math (``$``) and Streamlit's ``:color[...]`` / ``:material/...:`` directives;
    line breaks and control characters become spaces (one value stays one line); bare URLs and
    e-mail addresses get an invisible word joiner in front so they are not autolinked.

    Args:
        value: any value; ``None`` gives an empty string.

    Returns:
        Markdown source whose rendering is the value's text (plus invisible word joiners).
    """
    text = _AUTOLINK.sub(WORD_JOINER, _BREAKS.sub(" ", _text(value)))
    return "".join("\\" + char if char in _PUNCTUATION else char for char in text)


def md_code(value: Any) -> str:
    """Any value as a Markdown code span (monospace, every character literal), e.g. an id or a command.

    Nothing inside a code span is parsed, so only the fence needs care: it is one backtick longer
    than the longest run of backticks in the value, and padded with a space when the value starts
    or ends with a backtick or a space (CommonMark strips one padding space from each side).

    Args:
        value: any value; ``None`` or ``""`` gives a code span holding one space.
    """
    text = _BREAKS.sub(" ", _text(value))
    if not text:
        return "` `"
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text[0] in "` " or text[-1] in "` " else ""
    return f"{fence}{pad}{text}{pad}{fence}"
