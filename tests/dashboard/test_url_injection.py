"""Hostile deep links under AppTest: every URL value the app echoes reaches Markdown escaped.

``st.warning`` / ``st.caption`` / ... render Markdown, so an HTML-escaped value is not enough:
``?user=[CLICK HERE TO LOG IN](http://evil)`` was a clickable link and ``?k=![x](http://evil/p.png)``
an image the browser fetched. Each message must hold :func:`md` of the value (which renders as
the literal text, see ``test_text.py``) and never the raw Markdown. The browser's view of the
same links is in ``test_browser.py``.
"""

from __future__ import annotations

import pytest

from dashboard import settings
from dashboard.components.text import md

LINK = "[CLICK HERE TO LOG IN](http://evil)"
IMAGE = "![x](http://evil/p.png)"


def _warnings(at) -> list[str]:
    return [w.value for w in at.warning]


def test_hostile_user_is_escaped_in_the_warning(open_app) -> None:
    at = open_app(page="recommendations", user=LINK)
    (warning,) = _warnings(at)
    assert warning.startswith(f"There is no user **{md(LINK)}** in *{md('tiny-demo')}*")
    assert LINK not in warning and "](" not in warning


def test_hostile_item_is_escaped_in_the_warning(open_app) -> None:
    at = open_app(page="why", item=IMAGE)
    warning = next(w for w in _warnings(at) if w.startswith("There is no item"))
    assert warning.startswith(f"There is no item **{md(IMAGE)}** in this catalog")
    assert IMAGE not in warning and "![" not in warning


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"k": IMAGE}, f"The link's k={IMAGE!r} is not a number; showing the top 10."),
        ({"page": IMAGE}, f"The link names an unknown page {IMAGE!r}; showing Overview."),
        ({"model": LINK}, f"The model {LINK!r} from the link is not in the cache; showing another one."),
        ({"dataset": LINK}, f"No trained model for the dataset {LINK!r}; showing 'tiny-demo'."),
    ],
    ids=["k", "page", "model", "dataset"],
)
def test_link_notices_are_escaped_whole(open_app, params: dict[str, str], message: str) -> None:
    at = open_app(**params)
    assert md(message) in _warnings(at)
    assert not any(message in w for w in _warnings(at))  # never the raw Markdown


def test_a_server_on_every_interface_shows_no_data(open_app, monkeypatch) -> None:
    # As `streamlit run .../app.py` does when it did not read the app's config: bound to 0.0.0.0,
    # nobody having chosen that address (Streamlit's server.address unset).
    monkeypatch.setattr(settings, "listening_addresses", lambda: ("0.0.0.0",))
    monkeypatch.delenv(settings.ALLOW_REMOTE_ENV, raising=False)
    at = open_app(page="recommendations")
    assert [e.value for e in at.error] == [settings.exposure_problem(("0.0.0.0",), None, {})]
    assert "`0.0.0.0`" in at.error[0].value and "gatlens dashboard --host" in at.error[0].value
    assert len(at.html) == 0 and len(at.selectbox) == 0  # stopped before any page or sidebar ran
    monkeypatch.setenv(settings.ALLOW_REMOTE_ENV, "1")  # a deliberate choice serves the app
    at = open_app(page="recommendations")
    assert len(at.error) == 0 and at.selectbox(key="w_user").value
